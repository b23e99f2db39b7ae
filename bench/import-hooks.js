// Module hooks for bench/import-probe.js: report every module URL the ESM loader resolves.
let port
export function initialize (data) { port = data.port }
export async function resolve (specifier, context, next) {
  const result = await next(specifier, context)
  port.postMessage(result.url)
  return result
}
