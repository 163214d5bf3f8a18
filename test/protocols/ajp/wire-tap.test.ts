// The servers tests' AJP tap (test/servers/helpers/ajp-wire.ts) tells a body packet from a request
// the way tsgi does: by counting the packets on their way, not by "until END_RESPONSE".

import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import {
  encodeBodyPacket,
  encodeCPing,
  encodeEndResponse,
  encodeForwardRequest,
  encodeGetBodyChunk,
  encodeSendHeaders,
} from '../../../src/protocols/ajp/codec.js';
import { ajpWire, describeEvents } from '../../servers/helpers/ajp-wire.js';
import type { TapConnection } from '../../servers/helpers/tap.js';

describe('ajpWire (the servers tests’ tap)', () => {
  const conn = { id: 1 } as TapConnection;
  const up = (w: ReturnType<typeof ajpWire>, b: Uint8Array) => w.observe(conn, 'up', Buffer.from(b));
  const down = (w: ReturnType<typeof ajpWire>, b: Uint8Array) => w.observe(conn, 'down', Buffer.from(b));

  // Regression: a refused POST (wrong secret) answered before httpd's unasked body packet crossed
  // the tap: the tap took the packet for something between requests ('other'), and the servers
  // test waiting for it timed out under load.
  it('the unasked body packet seen after END_RESPONSE is still body', () => {
    const w = ajpWire();
    up(w, encodeForwardRequest({ method: 'POST', requestUri: '/upload', headers: [['Content-Length', '1024']] }));
    down(w, encodeSendHeaders(403, 'Forbidden', []));
    down(w, encodeEndResponse(true));
    up(w, encodeBodyPacket(new Uint8Array(1024)));
    up(w, encodeCPing());
    expect(describeEvents(w.events)).toEqual(['#1 up forward POST /upload (' + w.events[0]!.size + ' B)', '#1 down headers 403', '#1 down end reuse=1', '#1 up body 1024 B', '#1 up cping']);
    expect(w.errors).toEqual([]);
  });

  it('asked packets are body, a GET has none, a chunked POST has no unasked one', () => {
    const w = ajpWire();
    up(w, encodeForwardRequest({ method: 'GET', requestUri: '/' }));
    down(w, encodeEndResponse(true));
    up(w, encodeCPing());
    up(w, encodeForwardRequest({ method: 'POST', requestUri: '/c', headers: [['Transfer-Encoding', 'chunked'], ['Content-Length', '5']] }));
    down(w, Buffer.concat([encodeGetBodyChunk(8186), encodeGetBodyChunk(8186)]));
    up(w, encodeBodyPacket(new Uint8Array(3)));
    up(w, encodeBodyPacket(new Uint8Array(0)));
    up(w, encodeCPing());
    expect(w.events.map((e) => (e.dir === 'up' ? e.type : ''))).toEqual(['forward', '', 'cping', 'forward', '', '', 'body', 'body', 'cping']);
  });
});
