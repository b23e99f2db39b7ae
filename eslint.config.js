import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const LEAVES = ['errors\\.js$', 'options\\.js$']
// A specifier into src/ (`../…`) other than the leaves and the allowed folders.
const only = (...allowed) => `^\\.\\./(?!${[...LEAVES, ...allowed].join('|')})`
// A specifier into one of the named folders of src/.
const none = (...folders) => `^\\.\\./(${folders.join('|')})`
const layer = (files, message, regexes) => [{
  files: [files],
  rules: { 'no-restricted-imports': ['error', { patterns: regexes.map((regex) => ({ regex, message: `Layer rule (docs/architecture.md): ${message}.` })) }] }
}]

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test-output/', 'src/demo/public/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }]
    }
  },
  // The layering of docs/architecture.md, one block per part (a file matches one block, so each lists all its bans).
  // Paths are the relative specifiers as written in src/<part>/*.ts: `../x` is src/x. errors.ts and options.ts
  // are leaves every part may import.
  ...layer('src/protocol/**', 'protocol/ imports nothing from src/ but errors.ts and options.ts', [only()]),
  ...layer('src/keys/**', 'keys/ imports only protocol/, errors.ts and options.ts', [only('protocol/')]),
  ...layer('src/receiver/**', 'receiver/ imports none of server/, client/, sim/, demo/, tickets/ (tickets use its hook)', [none('server/', 'client/', 'sim/', 'demo/', 'tickets/')]),
  ...layer('src/server/**', 'server/ imports none of client/, sim/, demo/', [none('client/', 'sim/', 'demo/')]),
  ...layer('src/client/**', 'client/ imports none of server/, sim/, demo/', [none('server/', 'sim/', 'demo/')]),
  ...layer('src/sim/**', 'sim/ imports none of server/, client/, demo/', [none('server/', 'client/', 'demo/')]),
  ...layer('src/diagnose/**', 'diagnose/ imports only protocol/, keys/, errors.ts, options.ts and receiver/signature-verifier.ts',
    [only('protocol/', 'keys/', 'receiver/signature-verifier\\.js$')]),
  ...layer('src/events/**', 'events/ imports nothing of server/ or delivery/', [none('server/', 'delivery/')]),
  ...layer('src/adapters/**', 'adapters/ import only receiver/, protocol/, keys/, errors.ts and options.ts', [only('receiver/', 'protocol/', 'keys/')]),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked
  },
  {
    // Plain Node scripts outside the TypeScript project (the example upstream under docker/).
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } }
  },
  {
    // The benchmark is plain ESM run by Node against dist/.
    files: ['bench/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(['process', 'Buffer', 'URL', 'fetch', 'Response', 'performance', 'setTimeout', 'clearTimeout', 'console'].map((n) => [n, 'readonly']))
    }
  }
)
