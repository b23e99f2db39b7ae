export { upload, type UploadDependencies } from './client/upload.js'
export { UPLOAD_DEFAULTS, type SignatureVersion, type UploadCallbackOptions, type UploadOptions } from './client/options.js'
export type { ProgressListener, UploadProgress } from './client/progress.js'
export type {
  UploadCallbackFailed, UploadFailed, UploadOperation, UploadReceipt, UploadResult, UploadStep, UploadSucceeded
} from './client/result.js'
