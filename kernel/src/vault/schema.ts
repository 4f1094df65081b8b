/**
 * Versioned schema migrations. Each one runs once, in order, in its own
 * transaction, and is recorded in schema_migrations; PRAGMA user_version
 * mirrors the newest applied version so a glance at a file tells its shape.
 * Never edit a shipped migration: add a new one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'kernel core',
    sql: `
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE settings (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  expires_at   TEXT,
  revoked_at   TEXT,
  last_used_at TEXT
) STRICT;

CREATE TABLE targets (
  id              TEXT PRIMARY KEY,
  kind            TEXT NOT NULL,
  name            TEXT NOT NULL UNIQUE,
  description     TEXT NOT NULL DEFAULT '',
  config          TEXT NOT NULL,
  config_revision INTEGER NOT NULL DEFAULT 1,
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL
) STRICT;

CREATE TABLE profiles (
  id              TEXT PRIMARY KEY,
  target_id       TEXT NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
  label           TEXT NOT NULL,
  credential_kind TEXT NOT NULL,
  config          TEXT NOT NULL,
  secret          BLOB,
  secret_fields   TEXT NOT NULL,
  config_revision INTEGER NOT NULL DEFAULT 1,
  secret_revision INTEGER NOT NULL DEFAULT 1,
  created_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  UNIQUE (target_id, label)
) STRICT;

CREATE TABLE grants (
  id         TEXT PRIMARY KEY,
  token_id   TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
  target_id  TEXT NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
  profile_id TEXT NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
  action     TEXT NOT NULL,
  rule       TEXT NOT NULL CHECK (rule IN ('always_run', 'approval_required', 'blocked')),
  expires_at TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (token_id, target_id, profile_id, action)
) STRICT;
CREATE INDEX grants_by_profile ON grants (profile_id);
CREATE INDEX grants_by_target ON grants (target_id);

CREATE TABLE requests (
  seq                 INTEGER PRIMARY KEY,
  id                  TEXT NOT NULL UNIQUE,
  token_id            TEXT NOT NULL,
  token_name          TEXT NOT NULL,
  target_id           TEXT NOT NULL,
  target_name         TEXT NOT NULL,
  profile_id          TEXT NOT NULL,
  profile_label       TEXT NOT NULL,
  connector_id        TEXT NOT NULL,
  action              TEXT NOT NULL,
  status              TEXT NOT NULL,
  rule                TEXT,
  reason              TEXT NOT NULL DEFAULT '',
  input_sealed        BLOB,
  input_preview       TEXT NOT NULL,
  input_hash          TEXT NOT NULL,
  idempotency_key     TEXT,
  request_fingerprint TEXT NOT NULL,
  snapshot            TEXT,
  snapshot_hash       TEXT,
  status_reason       TEXT,
  output_preview      TEXT,
  output_truncated    INTEGER NOT NULL DEFAULT 0,
  error               TEXT,
  operator_note       TEXT,
  created_at          TEXT NOT NULL,
  updated_at          TEXT NOT NULL,
  expires_at          TEXT,
  decided_at          TEXT,
  started_at          TEXT,
  finished_at         TEXT
) STRICT;
CREATE UNIQUE INDEX requests_idempotency ON requests (token_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Pending requests are few; status narrows every lookup of them (expiry, staling by target/profile/token).
CREATE INDEX requests_by_status ON requests (status, expires_at);

-- Full-text search. The index is contentless (rows are joined back by rowid) and
-- maintained off the commit path: writes only mark a row dirty, and a deferred
-- indexer folds dirty rows in, in bulk, shortly after and before every search.
-- Updating FTS inside each small commit tripled its cost.
CREATE VIRTUAL TABLE requests_fts USING fts5(
  id, action, connector_id, target_name, profile_label, token_name, reason, input_preview, output_preview, status, status_reason, operator_note,
  content = '', contentless_delete = 1
);
CREATE TABLE requests_fts_dirty (seq INTEGER PRIMARY KEY) STRICT;
CREATE TRIGGER requests_dirty_on_insert AFTER INSERT ON requests BEGIN
  INSERT OR IGNORE INTO requests_fts_dirty (seq) VALUES (new.seq);
END;
CREATE TRIGGER requests_dirty_on_update AFTER UPDATE ON requests BEGIN
  INSERT OR IGNORE INTO requests_fts_dirty (seq) VALUES (new.seq);
END;

CREATE TABLE messages (
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL UNIQUE,
  direction    TEXT NOT NULL CHECK (direction IN ('to_agent', 'to_operator')),
  token_id     TEXT NOT NULL,
  request_id   TEXT,
  body         TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  delivered_at TEXT,
  read_at      TEXT
) STRICT;
CREATE INDEX messages_undelivered ON messages (token_id, direction, delivered_at);

CREATE TABLE audit_log (
  seq       INTEGER PRIMARY KEY,
  ts        TEXT NOT NULL,
  actor     TEXT NOT NULL,
  event     TEXT NOT NULL,
  subject   TEXT NOT NULL,
  payload   TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_ts ON audit_log (ts);

-- Audit full-text index: contentless, filled by the deferred indexer from the
-- append-only log up to the seq recorded in meta 'audit_fts_seq'.
CREATE VIRTUAL TABLE audit_fts USING fts5(
  event, actor, subject, payload,
  content = '', contentless_delete = 1
);

CREATE TABLE redaction_rules (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  pattern     TEXT NOT NULL,
  flags       TEXT NOT NULL DEFAULT '',
  replacement TEXT NOT NULL DEFAULT '[REDACTED]',
  created_at  TEXT NOT NULL
) STRICT;
`,
  },
  {
    version: 2,
    name: 'plugin approvals',
    sql: `
-- Which installed (third-party) plugins this database trusts, pinned to the
-- exact package contents (integrity) and manifest. Kept here, inside the
-- encrypted database, because a record in the data directory could be
-- rewritten by anything running as the same user, the agent included.
CREATE TABLE plugin_approvals (
  plugin_id     TEXT PRIMARY KEY,
  version       TEXT NOT NULL,
  integrity     TEXT NOT NULL,
  manifest_hash TEXT NOT NULL,
  approved_at   TEXT NOT NULL,
  approved_by   TEXT NOT NULL
) STRICT;
`,
  },
  {
    version: 3,
    name: 'operator-run requests',
    sql: `
-- Who ran a request the operator made directly (the UI and CLI run actions as
-- the operator, through the same pipeline as an agent): their audit actor.
-- NULL for an agent's request, whose token_id says who asked.
ALTER TABLE requests ADD COLUMN operator_actor TEXT;
`,
  },
  {
    version: 4,
    name: 'plugin approvals pin the entry',
    sql: `
-- The entry file an approval was given for (relative to the package), so an
-- install record that names another file of the same package is not the
-- approved plugin. NULL for approvals made before this column: their entry is
-- the one the approved package.json names (covered by the integrity).
ALTER TABLE plugin_approvals ADD COLUMN entry TEXT;
`,
  },
  {
    version: 5,
    name: 'indexes for filters and maintenance at scale',
    sql: `
-- What the UI and CLI filter on, each ending (implicitly) in the rowid, so a
-- filter walks its index newest-first and stops after one page: no sort of
-- every match. Measured in kernel/bench/audit.mjs (docs/performance.md).
CREATE INDEX audit_by_actor ON audit_log (actor);
CREATE INDEX audit_by_event ON audit_log (event);
CREATE INDEX audit_by_actor_event ON audit_log (actor, event);
CREATE INDEX requests_by_status_seq ON requests (status);
CREATE INDEX requests_by_token ON requests (token_id);
CREATE INDEX requests_by_target ON requests (target_id);
CREATE INDEX requests_by_action ON requests (action);
-- Retention finds the oldest rows by time and deletes them in small chunks.
CREATE INDEX requests_by_created ON requests (created_at);
CREATE INDEX messages_by_created ON messages (created_at);
`,
  },
  {
    version: 6,
    name: 'ssh keys and pinned host keys',
    sql: `
-- SSH private keys live only here, sealed like profile secrets (invariant 2):
-- the kernel signs with them, nothing reads them out. The public half and
-- its fingerprint are clear so they can be shown and matched.
CREATE TABLE ssh_keys (
  id             TEXT PRIMARY KEY,
  name           TEXT NOT NULL UNIQUE,
  key_type       TEXT NOT NULL,
  public_key     TEXT NOT NULL,
  fingerprint    TEXT NOT NULL,
  private_sealed BLOB NOT NULL,
  origin         TEXT NOT NULL CHECK (origin IN ('generated', 'imported')),
  created_at     TEXT NOT NULL,
  created_by     TEXT NOT NULL
) STRICT;
-- known_hosts of this database (invariant 3): one pinned key per host:port.
CREATE TABLE ssh_host_keys (
  host        TEXT NOT NULL,
  port        INTEGER NOT NULL,
  key_type    TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  pinned_at   TEXT NOT NULL,
  pinned_by   TEXT NOT NULL,
  PRIMARY KEY (host, port)
) STRICT;
-- What the operator is asked: an unknown key (pin it?) or a changed one
-- (replace the pin?). Decided once; a decided row is history.
CREATE TABLE ssh_host_key_approvals (
  id          TEXT PRIMARY KEY,
  host        TEXT NOT NULL,
  port        INTEGER NOT NULL,
  key_type    TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  reason      TEXT NOT NULL CHECK (reason IN ('unknown', 'changed')),
  pinned_fingerprint TEXT,
  status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  created_at  TEXT NOT NULL,
  decided_at  TEXT,
  decided_by  TEXT
) STRICT;
CREATE INDEX ssh_host_key_approvals_by_host ON ssh_host_key_approvals (host, port, status);
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
