// FastCGI 1.0 wire constants (Open Market specification, 29 April 1996), shared by both sides:
// the application (our server) and the web server (tests, clients).

// Spec 3.3 "Records" and 8 "Types and Constants": the FCGI_Header.
/** FCGI_VERSION_1: the only version there is; anything else is a protocol error. */
export const FCGI_VERSION_1 = 1;
/** FCGI_HEADER_LEN: every record starts with this many bytes. */
export const HEADER_LENGTH = 8;
/** contentLength is two bytes: the most content one record can carry. */
export const MAX_CONTENT_LENGTH = 65535;
/** paddingLength is one byte. */
export const MAX_PADDING_LENGTH = 255;
/** FCGI_NULL_REQUEST_ID: management records (3.3, 4) travel on request id 0. */
export const NULL_REQUEST_ID = 0;

// Spec 8 "Types and Constants": values of FCGI_Header.type.
export const RecordType = {
  BeginRequest: 1, // FCGI_BEGIN_REQUEST (5.1)
  AbortRequest: 2, // FCGI_ABORT_REQUEST (5.4)
  EndRequest: 3, // FCGI_END_REQUEST (5.5)
  Params: 4, // FCGI_PARAMS (5.2)
  Stdin: 5, // FCGI_STDIN (5.3)
  Stdout: 6, // FCGI_STDOUT (5.3)
  Stderr: 7, // FCGI_STDERR (5.3)
  Data: 8, // FCGI_DATA (5.3, Filter role)
  GetValues: 9, // FCGI_GET_VALUES (4.1)
  GetValuesResult: 10, // FCGI_GET_VALUES_RESULT (4.1)
  UnknownType: 11, // FCGI_UNKNOWN_TYPE (4.2)
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

// Spec 5.1 "FCGI_BEGIN_REQUEST": FCGI_BeginRequestBody.role.
export const Role = {
  Responder: 1, // FCGI_RESPONDER (6.2)
  Authorizer: 2, // FCGI_AUTHORIZER (6.3)
  Filter: 3, // FCGI_FILTER (6.4)
} as const;
export type Role = (typeof Role)[keyof typeof Role];

// Spec 5.1: mask for FCGI_BeginRequestBody.flags. Unset: close the connection after the request.
export const FCGI_KEEP_CONN = 1;

// Spec 5.5 "FCGI_END_REQUEST": FCGI_EndRequestBody.protocolStatus.
export const ProtocolStatus = {
  RequestComplete: 0, // FCGI_REQUEST_COMPLETE
  CantMpxConn: 1, // FCGI_CANT_MPX_CONN
  Overloaded: 2, // FCGI_OVERLOADED
  UnknownRole: 3, // FCGI_UNKNOWN_ROLE
} as const;
export type ProtocolStatus = (typeof ProtocolStatus)[keyof typeof ProtocolStatus];

// Spec 4.1 "FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT": variable names a web server may ask for.
/** Most concurrent transport connections this application will accept. */
export const FCGI_MAX_CONNS = 'FCGI_MAX_CONNS';
/** Most concurrent requests this application will accept. */
export const FCGI_MAX_REQS = 'FCGI_MAX_REQS';
/** "0" if this application does not multiplex connections, "1" if it does. */
export const FCGI_MPXS_CONNS = 'FCGI_MPXS_CONNS';
