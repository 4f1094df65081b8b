// `pnpm bench`: every kernel benchmark, one after another, each printing its table.
const selected = process.argv.slice(2);
for (const name of ['pipeline', 'plugins', 'audit']) {
  if (selected.length > 0 && !selected.includes(name)) continue;
  await import(`./${name}.mjs`);
}
