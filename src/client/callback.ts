import { invalidOption } from '../errors.js'
import { FORM_CONTENT_TYPE, JSON_CONTENT_TYPE, parseCallbackTemplate } from '../protocol/body.js'
import { encodeCallbackParam, normalizeCallbackVarName, type EncodedCallbackParam } from '../protocol/callback-param.js'
import type { ResolvedUploadOptions } from './options.js'

/** The callback parameter of an upload, encoded, with its variables as PostObject form fields need them. */
export interface UploadCallbackParam extends EncodedCallbackParam {
  /** `x:name -> value`. */
  vars: Record<string, string>
}

/**
 * Encodes and checks the callback parameter with the shared encoder (OSS's rules:
 * at most 5 URLs, 5 KB limits, lower-case `x:` names, known placeholders), and
 * also refuses a `${x:name}` placeholder for which no variable was given: OSS
 * would expand it to nothing, which is never what the uploader meant.
 */
export function encodeUploadCallback (cb: ResolvedUploadOptions['callback']): UploadCallbackParam {
  // Names first: a default body names every variable, and a bad name should be reported as one.
  const vars: Record<string, string> = {}
  for (const [name, value] of Object.entries(cb.vars)) vars[normalizeCallbackVarName(name)] = value
  const encoded = encodeCallbackParam({
    callbackUrl: cb.url,
    ...(cb.host === undefined ? {} : { callbackHost: cb.host }),
    callbackBody: cb.body,
    callbackBodyType: cb.bodyType === 'json' ? JSON_CONTENT_TYPE : FORM_CONTENT_TYPE,
    ...(cb.sni ? { callbackSNI: true } : {})
  }, vars)
  for (const part of parseCallbackTemplate(cb.body)) {
    if ('variable' in part && part.variable.startsWith('x:') && !Object.hasOwn(vars, part.variable)) {
      throw invalidOption(`callback body: \${${part.variable}} has no value; give it with --var ${part.variable.slice(2)}=<value>`)
    }
  }
  return { ...encoded, vars }
}
