import fp from 'fastify-plugin'
import { ossCallback as plugin } from './receiver/plugin.js'

/**
 * The oss-callback Fastify plugin. `encapsulate: true` keeps its raw-body content-type
 * parsers, body limit and error handler inside it: the host app's own routes parse as before.
 */
export const ossCallback = fp(plugin, { name: 'oss-callback', fastify: '5.x', encapsulate: true })
export default ossCallback

export { MAX_REPLY_BYTES, RawJsonReply } from './receiver/reply.js'
export type { CallbackContext, CallbackHandler, OssCallbackPluginOptions, PreHandlerContext, PreHandlerHook } from './receiver/plugin.js'
