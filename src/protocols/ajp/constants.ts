// AJP13 wire constants (Tomcat connectors' "AJPv13" document; Tomcat coyote/ajp/Constants.java,
// httpd modules/proxy/ajp.h and ajp_header.h), shared by both sides: the container (our server)
// and the web server (tests, clients).

// "Packet Headers": magic(2) length(2) payload. Server -> container 0x12 0x34; container ->
// server 'A' 'B'. The length counts the payload only.
/** Magic of packets the web server sends to the container: 0x12 0x34. */
export const SERVER_MAGIC = 0x1234;
/** Magic of packets the container sends to the web server: 'A' 'B' (0x41 0x42). */
export const CONTAINER_MAGIC = 0x4142;
/** magic(2) + length(2). */
export const HEADER_LENGTH = 4;
/** "Packet Size": 8 KiB, what Tomcat's packetSize and httpd's ProxyIOBufferSize default to. */
export const DEFAULT_PACKET_SIZE = 8192;
/** httpd's AJP_MAX_BUFFER_SZ and Tomcat's packetSize ceiling: header included. */
export const MAX_PACKET_SIZE = 65536;
/**
 * SEND_BODY_CHUNK overhead per packet: header(4) prefix(1) chunk length(2) and the trailing 0x00
 * httpd insists on (ajp_parse_data); Tomcat's SEND_HEAD_LEN. Data per packet = size - 8.
 */
export const SEND_BODY_OVERHEAD = 8;
/** Request body packet overhead: header(4) data length(2); Tomcat's READ_HEAD_LEN. */
export const READ_BODY_OVERHEAD = 6;
/** A string length of 0xFFFF is a null string: no bytes, no terminator follow. */
export const NULL_STRING_LENGTH = 0xffff;

// "Packet Headers": first payload byte of every packet except request body data.
export const PrefixCode = {
  // web server -> container
  ForwardRequest: 2, // JK_AJP13_FORWARD_REQUEST
  Shutdown: 7, // JK_AJP13_SHUTDOWN
  Ping: 8, // JK_AJP13_PING_REQUEST
  CPing: 10, // JK_AJP13_CPING_REQUEST
  // container -> web server
  SendBodyChunk: 3, // JK_AJP13_SEND_BODY_CHUNK
  SendHeaders: 4, // JK_AJP13_SEND_HEADERS
  EndResponse: 5, // JK_AJP13_END_RESPONSE
  GetBodyChunk: 6, // JK_AJP13_GET_BODY_CHUNK
  CPong: 9, // JK_AJP13_CPONG_REPLY
} as const;
export type PrefixCode = (typeof PrefixCode)[keyof typeof PrefixCode];

// "Request Packet Structure" / method: one byte. httpd sends HEAD as 3 for header-only GETs.
export const MethodCode = {
  OPTIONS: 1, // SC_M_OPTIONS
  GET: 2,
  HEAD: 3,
  POST: 4,
  PUT: 5,
  DELETE: 6,
  TRACE: 7,
  PROPFIND: 8,
  PROPPATCH: 9,
  MKCOL: 10,
  COPY: 11,
  MOVE: 12,
  LOCK: 13,
  UNLOCK: 14,
  ACL: 15,
  REPORT: 16,
  'VERSION-CONTROL': 17,
  CHECKIN: 18,
  CHECKOUT: 19,
  UNCHECKOUT: 20,
  SEARCH: 21,
  MKWORKSPACE: 22,
  UPDATE: 23,
  LABEL: 24,
  MERGE: 25,
  'BASELINE-CONTROL': 26, // the document spells it BASELINE_CONTROL; the method has a hyphen
  MKACTIVITY: 27, // SC_M_MKACTIVITY
} as const;
export type MethodCode = (typeof MethodCode)[keyof typeof MethodCode];
/** SC_M_JK_STORED: the method is in the stored_method attribute (httpd: any method not above). */
export const METHOD_STORED = 0xff;
/** Method names by code: `METHOD_NAMES[2] === 'GET'`; index 0 is unused. */
export const METHOD_NAMES: readonly string[] = (() => {
  const names: string[] = [''];
  for (const [name, code] of Object.entries(MethodCode)) names[code] = name;
  return names;
})();

// "Headers": a request header name is either 0xA0xx or a length-prefixed string. Names are the
// document's lower-case ones; httpd matches them case-insensitively before coding.
export const RequestHeaderCode = {
  accept: 0xa001, // SC_REQ_ACCEPT
  'accept-charset': 0xa002,
  'accept-encoding': 0xa003,
  'accept-language': 0xa004,
  authorization: 0xa005,
  connection: 0xa006,
  'content-type': 0xa007,
  'content-length': 0xa008,
  cookie: 0xa009,
  cookie2: 0xa00a,
  host: 0xa00b,
  pragma: 0xa00c,
  referer: 0xa00d,
  'user-agent': 0xa00e, // SC_REQ_USER_AGENT
} as const;
export type RequestHeaderCode = (typeof RequestHeaderCode)[keyof typeof RequestHeaderCode];
/** Request header names by the code's low byte: `REQUEST_HEADER_NAMES[1] === 'accept'`. */
export const REQUEST_HEADER_NAMES: readonly string[] = (() => {
  const names: string[] = [''];
  for (const [name, code] of Object.entries(RequestHeaderCode)) names[code & 0xff] = name;
  return names;
})();

// "Send Headers": the same 0xA0xx scheme for response header names, in these spellings.
export const ResponseHeaderCode = {
  'Content-Type': 0xa001, // SC_RESP_CONTENT_TYPE
  'Content-Language': 0xa002,
  'Content-Length': 0xa003,
  Date: 0xa004,
  'Last-Modified': 0xa005,
  Location: 0xa006,
  'Set-Cookie': 0xa007,
  'Set-Cookie2': 0xa008,
  'Servlet-Engine': 0xa009,
  Status: 0xa00a,
  'WWW-Authenticate': 0xa00b, // SC_RESP_WWW_AUTHENTICATE
} as const;
export type ResponseHeaderCode = (typeof ResponseHeaderCode)[keyof typeof ResponseHeaderCode];
/** Response header names by the code's low byte: `RESPONSE_HEADER_NAMES[1] === 'Content-Type'`. */
export const RESPONSE_HEADER_NAMES: readonly string[] = (() => {
  const names: string[] = [''];
  for (const [name, code] of Object.entries(ResponseHeaderCode)) names[code & 0xff] = name;
  return names;
})();
/** A header name's first two bytes with this high byte are a code, not a string length. */
export const HEADER_CODE_MARKER = 0xa0;

// "Attributes": one code byte, then a string, except ssl_key_size (an integer, as httpd sends
// it and Tomcat reads it) and req_attribute (two strings: name, value). 0xFF ends the list.
export const AttributeCode = {
  Context: 0x01, // ?context, never sent by httpd
  ServletPath: 0x02, // ?servlet_path, never sent by httpd
  RemoteUser: 0x03, // ?remote_user
  AuthType: 0x04, // ?auth_type
  QueryString: 0x05, // ?query_string
  Route: 0x06, // ?route, SC_A_JVM_ROUTE (httpd: the "session-route" note)
  SslCert: 0x07, // ?ssl_cert
  SslCipher: 0x08, // ?ssl_cipher
  SslSession: 0x09, // ?ssl_session
  ReqAttribute: 0x0a, // ?req_attribute name value
  SslKeySize: 0x0b, // ?ssl_key_size, integer
  Secret: 0x0c, // ?secret (httpd ProxyPass secret=, sent first)
  StoredMethod: 0x0d, // ?stored_method, with method code 0xFF
  AreDone: 0xff, // request_terminator
} as const;
export type AttributeCode = (typeof AttributeCode)[keyof typeof AttributeCode];

// Names httpd mod_proxy_ajp sends as req_attribute (ajp_header.h); AJP_* environment variables
// also go as req_attribute, with the "AJP_" prefix stripped.
export const ReqAttributeName = {
  RemotePort: 'AJP_REMOTE_PORT', // SC_A_REQ_REMOTE_PORT, always sent
  LocalAddr: 'AJP_LOCAL_ADDR', // SC_A_REQ_LOCAL_ADDR, always sent
  SslProtocol: 'AJP_SSL_PROTOCOL', // SC_A_SSL_PROTOCOL, over TLS
} as const;

/** `ProtocolError` codes thrown by the AJP codec. */
export const AjpErrorCode = {
  BadMagic: 'TSGI_AJP_BAD_MAGIC',
  PacketTooLarge: 'TSGI_AJP_PACKET_TOO_LARGE',
  BadRequest: 'TSGI_AJP_BAD_REQUEST',
  BadBody: 'TSGI_AJP_BAD_BODY',
  BadResponse: 'TSGI_AJP_BAD_RESPONSE',
  HeadersTooLarge: 'TSGI_AJP_HEADERS_TOO_LARGE',
} as const;
