import { describeConformance } from '@aipermission/plugin-sdk/testing';

describeConformance({ entry: new URL('../dist/plugin.mjs', import.meta.url), name: 'redis plugin conformance' });
