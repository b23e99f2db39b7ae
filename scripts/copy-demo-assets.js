// tsc copies no .html, .js or .css assets: put the demo page next to dist/demo/demo.js.
import { cpSync, rmSync } from 'node:fs'
import { URL } from 'node:url'

const from = new URL('../src/demo/public/', import.meta.url)
const to = new URL('../dist/demo/public/', import.meta.url)
rmSync(to, { recursive: true, force: true })
cpSync(from, to, { recursive: true })
