export { callbackResponse, errorResponse, verifyRequest, type VerifyRequestOptions } from './adapters/web.js'
export { MAX_REPLY_BYTES, RawJsonReply } from './receiver/reply.js'
