/**
 * The console slot: a connector's own view next to the generic action runner.
 * Each connector issue adds its view here (SSH terminal, SQL workspace,
 * RabbitMQ, Docker); a connector without one gets the runner only.
 */
import type { Component } from 'svelte';
import RedisKeys from './RedisKeys.svelte';

export interface ConsoleViewProps {
  database: string;
  targetRef: string;
}

export const CONSOLE_VIEWS: Record<string, { title: string; component: Component<ConsoleViewProps> }> = {
  redis: { title: 'Key browser', component: RedisKeys },
};
