import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Fixture, type Harness } from './helpers/kernel.js';
import { TestClient, httpApp } from './helpers/http.js';
import { PASSWORD } from './helpers/temp.js';
import { storageRefusal } from '../src/lib/storage-errors.js';

describe('a full disk, named as such (issue 16 item 4)', () => {
  let h: Harness;
  let f: Fixture;
  let client: TestClient;
  beforeAll(async () => {
    h = await createHarness({ manualClock: false });
    f = await h.setup('always_run');
    client = new TestClient(httpApp(h.kernel).app);
    await client.get('/api/status');
    await client.json('POST', '/api/databases/main/unlock', { password: PASSWORD });
  });
  afterAll(async () => {
    await h.ws.db.get('PRAGMA max_page_count = 1073741823');
    await h?.cleanup();
  });

  it('refuses a change with "the disk is full" and what to do, changes nothing, and keeps reads working', async () => {
    const before = await client.json<{ grants: unknown[] }>('GET', `/api/databases/main/grants?tokenId=${f.tokenId}`);
    // SQLite's own full-database condition, for real: no page may be added from now on.
    const pages = (await h.ws.db.get<{ page_count: number }>('PRAGMA page_count'))!.page_count;
    await h.ws.db.get(`PRAGMA max_page_count = ${pages}`);
    // Enough new rows that the change needs new pages.
    const many = await client.request('POST', '/api/databases/main/tokens', { name: 'x'.repeat(60) });
    let refusal = many;
    for (let i = 0; i < 200 && refusal.status < 500; i += 1) {
      refusal = await client.request('PUT', '/api/databases/main/grants', { tokenId: f.tokenId, targetId: f.targetId, profileId: f.profileId, action: 'echo', rule: i % 2 ? 'always_run' : 'approval_required' });
    }
    expect(refusal.status).toBe(507);
    const body = (await refusal.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('disk_full');
    expect(body.error.message).toMatch(/disk .* is full.*not made.*Free some space/);
    // Reads go on.
    expect((await client.request('GET', `/api/databases/main/grants?tokenId=${f.tokenId}`)).status).toBe(200);
    expect((await client.request('GET', '/api/databases/main/requests')).status).toBe(200);
    await h.ws.db.get('PRAGMA max_page_count = 1073741823');
    expect((await client.json<{ grants: unknown[] }>('GET', `/api/databases/main/grants?tokenId=${f.tokenId}`)).grants.length).toBeGreaterThanOrEqual(before.grants.length);
  });

  it('names a read-only database and a failing disk too, through the cause chain', () => {
    expect(storageRefusal(Object.assign(new Error('SQLITE_READONLY: attempt to write a readonly database'), { code: 'SQLITE_READONLY' }))).toMatchObject({ code: 'database_read_only', status: 503 });
    expect(storageRefusal(new Error('could not commit', { cause: Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' }) }))).toMatchObject({ code: 'storage_error' });
    expect(storageRefusal(new Error('SQLITE_FULL: database or disk is full'))).toMatchObject({ code: 'disk_full', status: 507 });
    // The operating system's words, from files written next to the databases (a plugin install, an import).
    expect(storageRefusal(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))).toMatchObject({ code: 'disk_full', status: 507 });
    expect(storageRefusal(new Error('Could not copy', { cause: Object.assign(new Error('read-only file system'), { code: 'EROFS' }) }))).toMatchObject({ code: 'database_read_only' });
    expect(storageRefusal(new Error('something else'))).toBeUndefined();
  });
});
