import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemo, type Demo } from '../../src/demo/demo.js'

const CHROMIUM = '/usr/bin/chromium'

// Waits for `selector`; on a timeout, says where the page stood (its URL, the steps shown, the result, failed
// requests), so that a stall tells which step it stopped at.
async function waitOrExplain (page: Page, selector: string, timeoutMs: number, failed: string[]): Promise<void> {
  try {
    await page.waitForSelector(selector, { timeout: timeoutMs })
  } catch (err) {
    // A string, evaluated in the page: the test's TypeScript has no DOM types.
    const where = page.evaluate(`({
      steps: [...document.querySelectorAll('#steps li')].map((li) => li.textContent),
      result: document.querySelector('#result')?.getAttribute('data-state'),
      resultText: document.querySelector('#result')?.textContent
    })`).catch((e: unknown) => String(e))
    const bounded = await Promise.race([where, new Promise((resolve) => setTimeout(() => resolve('page did not answer within 5 s'), 5000))])
    throw new Error(`${String(err)}\npage: ${page.url()}\nstate: ${JSON.stringify(bounded)}\nfailed requests: ${JSON.stringify(failed)}`)
  }
}
const OUTPUT = new URL('../../test-output/', import.meta.url)

describe('the demo page in headless Chromium', () => {
  let demo: Demo
  let browser: BrowserContext
  let profile: string
  const events: string[] = []

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} not found: this test needs the Debian package chromium (apt-get install -y chromium)`)
    }
    demo = await startDemo({ port: 0, log: (line) => { events.push(line) } })
    profile = mkdtempSync(join(tmpdir(), 'oss-cb-chromium-'))
    // A fresh profile each run: playwright passes it to Chromium as --user-data-dir.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-sync', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      timeout: 60_000
    })
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    await demo?.close()
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true })
  })

  it('uploads a chosen file straight to the simulator and shows the reply the receiver gave through OSS; a replay is refused', async () => {
    const page = await browser.newPage()
    const consoleErrors: string[] = []
    const failed: string[] = []
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
    page.on('requestfailed', (r) => { failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText ?? '?'}`) })
    await page.goto(demo.url)
    await page.setInputFiles('#file', { name: 'hello 世界 +1.txt', mimeType: 'text/plain', buffer: Buffer.from('hello, OSS\n') })
    await page.click('#upload')
    await waitOrExplain(page, '#result[data-state="ok"], #result[data-state="error"], #result[data-state="callback-failed"]', 30_000, failed)
    const state = await page.getAttribute('#result', 'data-state')
    const shown = await page.textContent('#result') ?? ''
    expect(state, `${shown}\n${events.join('\n')}`).toBe('ok')
    const reply = JSON.parse(shown)
    expect(reply).toMatchObject({
      Status: 'OK',
      bucket: 'demo-bucket',
      size: 11,
      mimeType: 'text/plain',
      ticket: { subject: 'demo-user' }
    })
    expect(reply.key).toMatch(/^uploads\/[A-Za-z0-9_-]{16}\/hello 世界 _1\.txt$/)
    expect(reply.etag).toMatch(/^[0-9A-F]{32}$/)
    expect(Date.parse(reply.ticket.expiresAt) - Date.parse(reply.ticket.issuedAt)).toBe(600_000)

    await page.click('#replay')
    await waitOrExplain(page, '#replay-result[data-state="refused"], #replay-result[data-state="ok"], #replay-result[data-state="error"]', 15_000, failed)
    expect(await page.getAttribute('#replay-result', 'data-state')).toBe('refused')
    const replayText = await page.textContent('#replay-result') ?? ''
    expect(replayText).toContain('409 OSS_CB_ERR_TICKET_USED')

    mkdirSync(OUTPUT, { recursive: true })
    await page.screenshot({ path: new URL('demo-upload.png', OUTPUT).pathname, fullPage: true })
    expect(existsSync(new URL('demo-upload.png', OUTPUT))).toBe(true)
    expect(consoleErrors).toEqual([])
    await page.close()
  }, 90_000)

  it('shows the receiver\'s refusal when the file is over the ticket size limit', async () => {
    const small = await startDemo({ port: 0, maxSizeBytes: 4 })
    try {
      const page = await browser.newPage()
      const failed: string[] = []
      page.on('requestfailed', (r) => { failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText ?? '?'}`) })
      await page.goto(small.url)
      await page.setInputFiles('#file', { name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(5) })
      await page.click('#upload')
      await waitOrExplain(page, '#result[data-state="error"], #result[data-state="ok"]', 30_000, failed)
      expect(await page.textContent('#result')).toBe('No ticket: 413 OSS_CB_ERR_TICKET_TOO_LARGE: The upload is larger than allowed')
      await page.close()
    } finally {
      await small.close()
    }
  }, 60_000)
})
