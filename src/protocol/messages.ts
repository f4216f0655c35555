// One import for the message layer: the slave link, the admin link and the
// bounds they share. Framing (encodeFrame, FrameDecoder) is in frame.ts;
// sending a message is encodeFrame(message).

export * from "./slave-messages.js";
export * from "./admin-messages.js";
export {
  MAX_CODE_LENGTH,
  MAX_IDENTITY_LENGTH,
  MAX_NAME_LENGTH,
  MAX_NONCE_BASE64_LENGTH,
  MAX_PATH_LENGTH,
  MAX_REPORTED_JOBS,
  MAX_TEXT_LENGTH,
  MAX_TOKEN_BASE64_LENGTH,
} from "./message-fields.js";
