// The browser half of a direct upload: ask the app backend for a ticket, POST the
// form straight to OSS (here the simulator), show what OSS relays from the receiver.
const form = document.getElementById('upload-form')
const input = document.getElementById('file')
const uploadButton = document.getElementById('upload')
const steps = document.getElementById('steps')
const result = document.getElementById('result')
const replayButton = document.getElementById('replay')
const replayResult = document.getElementById('replay-result')

function step (text) {
  const li = document.createElement('li')
  li.textContent = text
  steps.append(li)
}

function show (el, state, text) {
  el.dataset.state = state
  el.textContent = text
}

// OSS answers errors (and 203 CallbackFailed) as XML.
function ossError (xmlText) {
  const doc = new DOMParser().parseFromString(xmlText, 'application/xml')
  const text = (name) => doc.getElementsByTagName(name)[0]?.textContent ?? ''
  return { code: text('Code'), message: text('Message') }
}

async function upload (file) {
  steps.replaceChildren()
  step(`Asking the backend for a ticket for ${file.name} (${file.size} bytes)`)
  const ticketRes = await fetch('/api/ticket', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ filename: file.name, contentType: file.type || undefined, size: file.size })
  })
  const ticket = await ticketRes.json()
  if (!ticketRes.ok) {
    show(result, 'error', `No ticket: ${ticketRes.status} ${ticket.code}: ${ticket.message}`)
    return
  }
  step(`Got ticket ${ticket.ticket} for key ${ticket.key}, valid until ${ticket.expiresAt}`)

  const body = new FormData()
  for (const [name, value] of Object.entries(ticket.fields)) body.append(name, value)
  body.append('file', file) // OSS reads the fields before the file: it must come last
  step(`Uploading straight to ${ticket.uploadUrl}`)
  const res = await fetch(ticket.uploadUrl, { method: 'POST', body })
  const text = await res.text()
  if (res.status === 200) {
    step('Stored; the receiver answered the callback, and OSS relayed its reply')
    let pretty = text
    try { pretty = JSON.stringify(JSON.parse(text), null, 2) } catch {}
    show(result, 'ok', pretty)
    replayButton.disabled = false
  } else if (res.status === 203) {
    const { message } = ossError(text)
    step('Stored, but the callback failed (OSS answered 203)')
    show(result, 'callback-failed', `The object ${ticket.key} is stored, but the callback failed: ${message}`)
  } else {
    const { code, message } = ossError(text)
    show(result, 'error', `Upload refused: ${res.status} ${code}: ${message}`)
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  const file = input.files[0]
  if (file === undefined) return
  uploadButton.disabled = true
  show(result, 'busy', 'Uploading…')
  try {
    await upload(file)
  } catch (err) {
    show(result, 'error', `Failed: ${err.message}`)
  } finally {
    uploadButton.disabled = false
  }
})

replayButton.addEventListener('click', async () => {
  const res = await fetch('/api/replay-last-callback', { method: 'POST' })
  const reply = await res.json()
  if (!res.ok) {
    show(replayResult, 'error', reply.error)
    return
  }
  const verdict = reply.status === 200 ? 'accepted (replay protection is off!)' : 'refused'
  show(replayResult, reply.status === 200 ? 'ok' : 'refused', `The receiver ${verdict}: ${reply.status} ${reply.body.code ?? ''}\n${JSON.stringify(reply.body, null, 2)}`)
})
