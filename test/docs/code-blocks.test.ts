import { readdirSync, readFileSync } from 'node:fs'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.js'

// The placeholders the examples lean on: what an app has and the README leaves out.
const PRELUDE = `
declare const app: import('fastify').FastifyInstance
declare const req: import('node:http').IncomingMessage
declare const res: import('node:http').ServerResponse
declare const rawBody: Buffer
declare function saveUpload (bucket: string | undefined, key: string | undefined, size: number | undefined, options?: { signal?: AbortSignal }): Promise<void>
declare function recordUpload (subject: string | undefined, key: string | undefined, size: number | undefined): Promise<void>
declare function sessionUser (request: import('fastify').FastifyRequest): Promise<{ id: string } | undefined>
`

interface Block { file: string, line: number, code: string }

function typeScriptBlocks (): Block[] {
  const docs = ['README.md', ...readdirSync(`${ROOT}docs`).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  const blocks: Block[] = []
  for (const file of docs) {
    const lines = readFileSync(`${ROOT}${file}`, 'utf8').split('\n')
    for (let i = 0; i < lines.length; i++) {
      if (!/^```(ts|typescript)\s*$/.test(lines[i] as string)) continue
      const start = i + 1
      let end = start
      while (end < lines.length && lines[end] !== '```') end++
      blocks.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') })
      i = end
    }
  }
  return blocks
}

describe('the TypeScript examples of README.md and docs/', () => {
  it('compile under the repository\'s strict options, with oss-callback and its entry points resolved to src/', () => {
    const blocks = typeScriptBlocks()
    expect(blocks.length).toBeGreaterThanOrEqual(4)
    const configFile = ts.readConfigFile(`${ROOT}tsconfig.json`, (p) => ts.sys.readFile(p))
    const { options } = ts.parseJsonConfigFileContent(configFile.config, ts.sys, ROOT)
    options.noEmit = true
    options.baseUrl = ROOT
    // Every entry point from src/, so that a value made by one entry (a verifier) fits the types of another.
    options.paths = { 'oss-callback': ['src/index.ts'], 'oss-callback/*': ['src/*.ts'] }
    // Virtual files inside the repository, so that package.json's "type": "module" makes them ES modules.
    const virtual = new Map<string, string>([[`${ROOT}test/docs/.examples/prelude.d.ts`, PRELUDE]])
    const where = new Map<string, Block>()
    blocks.forEach((block, n) => {
      const name = `${ROOT}test/docs/.examples/block-${n}.ts`
      // Each block is a module of its own (an example without imports still gets module scope).
      virtual.set(name, `${block.code}\nexport {}\n`)
      where.set(name, block)
    })
    const host = ts.createCompilerHost(options)
    const getSourceFile = host.getSourceFile.bind(host)
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      const text = virtual.get(fileName)
      return text !== undefined ? ts.createSourceFile(fileName, text, languageVersion, true) : getSourceFile(fileName, languageVersion, onError, shouldCreate)
    }
    const fileExists = host.fileExists.bind(host)
    host.fileExists = (fileName) => virtual.has(fileName) || fileExists(fileName)
    const readFile = host.readFile.bind(host)
    host.readFile = (fileName) => virtual.get(fileName) ?? readFile(fileName)

    const program = ts.createProgram([...virtual.keys()], options, host)
    const problems = ts.getPreEmitDiagnostics(program)
      .filter((d) => d.file === undefined || virtual.has(d.file.fileName))
      .map((d) => {
        const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
        if (d.file === undefined || d.start === undefined) return message
        const block = where.get(d.file.fileName)
        const { line } = d.file.getLineAndCharacterOfPosition(d.start)
        return block === undefined ? `prelude: ${message}` : `${block.file}:${block.line + line}: ${message}`
      })
    expect(problems).toEqual([])
  }, 60_000)
})
