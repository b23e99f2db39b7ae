export {
  ossCallback, sendCallbackError, sendCallbackReply,
  type CallbackMiddleware, type ExpressCallbackOptions, type VerifiedRequest
} from './adapters/express.js'
export { MAX_REPLY_BYTES, RawJsonReply } from './receiver/reply.js'
