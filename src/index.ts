export { errors, isOssCallbackError, listErrorCodes, type ErrorReply, type OssCallbackError, type OssCallbackErrorName } from './errors.js'
export { decodeStrictBase64 } from './protocol/base64.js'
export { buildStringToSign, percentDecodePath, splitRequestTarget, type SignedTarget } from './protocol/string-to-sign.js'
export { parsePublicKeyPem, signCallback, verifyWithNodeCrypto } from './protocol/signature.js'
export { checkKeyUrl, compileKeyUrlPolicy, DEFAULT_KEY_ORIGINS, type KeyUrlPolicy } from './protocol/key-url.js'
export {
  bodyTypeOf, buildCallbackBody, isSystemVariable, parseCallbackBody, parseCallbackTemplate, SYSTEM_VARIABLES,
  type CallbackBodyType, type CallbackBodyValues, type CallbackSystemFields, type ParsedCallbackBody, type SystemVariableName,
  type TemplatePart
} from './protocol/body.js'
export {
  CALLBACK_PARAM_MESSAGES, decodeCallbackParam, DEFAULT_CALLBACK_BODY, defaultCallbackBody, encodeCallbackParam, isPublicIpv4, MAX_CALLBACK_PARAM_CHARS, MAX_CALLBACK_URLS,
  normalizeCallbackVarName,
  type CallbackBodyContentType, type CallbackParam, type CallbackParamOptions, type CallbackVars, type DecodedCallbackParam,
  type EncodedCallbackParam
} from './protocol/callback-param.js'
export { KeyProvider, type FetchLike, type KeyLookup, type KeyProviderOptions, type KeyProviderStats, type KeySource } from './keys/provider.js'
export { OSS_CALLBACK_PUBLIC_KEY_V1_PEM, OSS_CALLBACK_PUBLIC_KEY_V1_URLS } from './keys/pinned.js'
export {
  createCallbackVerifier, verifyCallback,
  type CallbackRequest, type CallbackVerifier, type CallbackVerifierOptions, type VerifiedCallback, type VerifyOptions
} from './receiver/verify.js'
export { createForgeVerifier, nodeCryptoVerifier, selectSignatureVerifier, type SignatureVerifier, type VerifierName } from './receiver/signature-verifier.js'
export {
  createDiagnostics, explainRefusal, type Diagnostics, type DiagnosticsOptions, type RefusedRequest
} from './diagnose/explain.js'
export {
  ossCallback, MAX_REPLY_BYTES, RawJsonReply, type CallbackContext, type CallbackHandler, type OssCallbackPluginOptions, type PluginTicketOptions
} from './receiver/plugin.js'
export { buildApp, defaultHandler, SERVER_TIMEOUTS, type AppDependencies, type ServerTimeouts } from './server/app.js'
export { loadConfig, type ServerConfig, type TicketConfig } from './server/config.js'
export {
  createForwarder, forwardEnvelope, FORWARD_EVENT_TYPE, FORWARD_OUTCOMES,
  type ForwardEnvelope, type Forwarder, type ForwarderOptions, type ForwardOutcome
} from './server/forward.js'
export { createServerMetrics, METRIC_NAMES, type ServerMetrics, type ServerMetricsOptions } from './server/metrics.js'
export {
  buildPostPolicy, createPostForm, encodePostPolicy, policyExpiration, signPostPolicy,
  type PostPolicy, type PostPolicyCondition, type PostPolicyInput, type PostSignatureVersion, type PostSigningCredentials, type SignedPostForm
} from './protocol/post-policy.js'
export {
  createUploadTickets, parseTicketRequest, TICKET_CALLBACK_BODY, uploadUrlOf,
  type IssuedTicket, type TicketGrant, type TicketRequest, type UploadTickets, type UploadTicketsOptions
} from './tickets/issuer.js'
export { createMemoryTicketStore, type MemoryTicketStoreOptions, type TicketConsumeResult, type TicketStore, type UploadTicket } from './tickets/store.js'
export { createRedisTicketStore, type RedisTicketStoreOptions } from './tickets/redis-store.js'
export { bearerAuthorizer, type TicketAuthorizer } from './tickets/route.js'
export { upload, type UploadDependencies } from './client/upload.js'
export { runUploadCommand, type UploadCommandIo } from './client/command.js'
export { UPLOAD_DEFAULTS, type SignatureVersion, type UploadCallbackOptions, type UploadOptions } from './client/options.js'
export type { UploadProgress, ProgressListener } from './client/progress.js'
export type {
  UploadCallbackFailed, UploadFailed, UploadOperation, UploadReceipt, UploadResult, UploadStep, UploadSucceeded
} from './client/result.js'
export { startSimulator, SIM_DEV_CREDENTIALS, type Simulator, type SimulatorOptions } from './sim/server.js'
export type { SimCredentials } from './sim/auth.js'
export { sendTestCallback, formatSendReport, DEFAULT_SIM_URL, type SendTestCallbackOptions } from './sim/send.js'
export type { SendAttempt, SendRequest, SendResult } from './sim/send-endpoint.js'
