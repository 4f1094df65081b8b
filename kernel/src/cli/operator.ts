import { GatewayClient, gatewayUrl } from './client.js';
import { passwordSource } from './prompt.js';

export interface OperatorContext {
  client: GatewayClient;
  db: string;
  /** `/api/databases/<db><path>` */
  path(suffix: string): string;
}

/** The common start of every operator command: find the gateway, pick the database, prove its password. */
export async function asOperator(values: { url?: string; db?: string; 'password-stdin'?: boolean }): Promise<OperatorContext> {
  const client = new GatewayClient(gatewayUrl(values.url));
  const db = await client.chooseDatabase(values.db);
  await client.prove(db, passwordSource(values['password-stdin']));
  return { client, db, path: (suffix) => `/api/databases/${encodeURIComponent(db)}${suffix}` };
}
