// End to end: the TypeScript blocks of docs/adapters.md typecheck against the package's own entry points
// (resolved through package.json `exports` to dist/, built by the global setup), as a user's code would.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const root = new URL('..', import.meta.url).pathname

describe('docs/adapters.md', () => {
  it('has TypeScript blocks that compile', () => {
    const doc = readFileSync(join(root, 'docs/adapters.md'), 'utf8')
    const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string)
    expect(blocks.length).toBeGreaterThanOrEqual(3)
    // Virtual files inside the package, so that `oss-callback/web` resolves by self-reference.
    const files = new Map(blocks.map((text, i) => [join(root, 'docs', `adapters-block-${i}.ts`), text]))
    const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
    const options = { ...config?.options, noEmit: true }
    const host = ts.createCompilerHost(options)
    const { getSourceFile, fileExists, readFile } = host
    host.fileExists = (f) => files.has(f) || fileExists(f)
    host.readFile = (f) => files.get(f) ?? readFile(f)
    host.getSourceFile = (f, lang, ...rest) => {
      const text = files.get(f)
      return text === undefined ? getSourceFile(f, lang, ...rest) : ts.createSourceFile(f, text, lang)
    }
    const program = ts.createProgram([...files.keys()], options, host)
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
    expect(problems).toEqual([])
  })
})
