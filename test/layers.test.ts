import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import tseslint from 'typescript-eslint'
import { describe, expect, it } from 'vitest'

// The layering rules of docs/architecture.md live in eslint.config.js; these cases keep them from silently
// matching nothing (a renamed folder, a broken pattern). Type-aware rules are off: only the imports matter here.
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: [{ languageOptions: { parserOptions: { projectService: false } } }, tseslint.configs.disableTypeChecked]
})

async function layerErrors (filePath: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import { x } from '${specifier}'\nexport const y = x\n`, { filePath })
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message)
}

describe('the layering rules', () => {
  it.each([
    ['src/protocol/fixture.ts', '../keys/provider.js'],
    ['src/protocol/fixture.ts', '../receiver/verify.js'],
    ['src/keys/fixture.ts', '../receiver/verify.js'],
    ['src/keys/fixture.ts', '../../test/helpers/keys.js'],
    ['src/receiver/fixture.ts', '../server/app.js'],
    ['src/receiver/fixture.ts', '../sim/server.js'],
    ['src/receiver/fixture.ts', '../tickets/store.js'],
    ['src/server/fixture.ts', '../client/upload.js'],
    ['src/server/fixture.ts', '../sim/server.js'],
    ['src/client/fixture.ts', '../server/app.js'],
    ['src/sim/fixture.ts', '../client/upload.js'],
    ['src/sim/fixture.ts', '../demo/demo.js'],
    ['src/diagnose/fixture.ts', '../receiver/plugin.js'],
    ['src/diagnose/fixture.ts', '../server/config.js'],
    ['src/events/fixture.ts', '../server/app.js'],
    ['src/events/fixture.ts', '../delivery/queue.js'],
    ['src/adapters/fixture.ts', '../server/app.js'],
    ['src/adapters/fixture.ts', '../tickets/store.js']
  ])('%s may not import %s', async (file, specifier) => {
    const errors = await layerErrors(file, specifier)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/Layer rule \(docs\/architecture\.md\): /)
  })

  it.each([
    ['src/protocol/fixture.ts', '../errors.js'],
    ['src/protocol/fixture.ts', '../options.js'],
    ['src/protocol/fixture.ts', './body.js'],
    ['src/keys/fixture.ts', '../protocol/signature.js'],
    ['src/receiver/fixture.ts', '../keys/provider.js'],
    ['src/diagnose/fixture.ts', '../receiver/signature-verifier.js'],
    ['src/diagnose/fixture.ts', '../keys/provider.js'],
    ['src/adapters/fixture.ts', '../receiver/verify.js'],
    ['src/delivery/fixture.ts', '../events/bus.js'],
    ['src/demo/fixture.ts', '../sim/server.js']
  ])('%s may import %s', async (file, specifier) => {
    expect(await layerErrors(file, specifier)).toEqual([])
  })
})
