import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // SQLCipher key derivation (256,000 PBKDF2 rounds) makes opening a database
    // take a few hundred ms; give hooks and tests room for several opens.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
  },
});
