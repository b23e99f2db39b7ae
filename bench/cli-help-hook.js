// Preloaded with --import by bench/import-cost.js: prints how long the program ran after Node's own start.
const started = performance.now()
process.on('exit', () => { process.stderr.write(`\ncli-ms ${performance.now() - started}\n`) })
