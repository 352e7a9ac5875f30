import { describe, expect, it } from 'vitest';
import { openApiDocument } from '../../../src/http/openapi';
import { EVENT_TYPES, type EventBase, type FeedPage } from '../src/index.ts';

// The client's types, checked against the service's OpenAPI document: the event types, the fields
// every event carries and a feed page's, and the operations the event client and the robot SDK call.

interface Schema {
  properties: Record<string, Schema & { enum?: string[] }>;
  required?: string[];
  items?: Schema;
}
type Operation = { responses: Record<string, { content?: Record<string, { schema: Schema }> }> };
const doc = openApiDocument('1') as unknown as { paths: Record<string, Record<string, Operation>> };
const feedSchema = () => doc.paths['/events']!.get!.responses['200']!.content!['application/json']!.schema;

// `satisfies` holds these lists to the types: a field added to or dropped from them fails to compile.
const EVENT_FIELDS = {
  type: true,
  eventId: true,
  occurredAt: true,
  deviceId: true,
  stream: true,
  seq: true,
  kid: true,
  sig: true,
} satisfies Record<keyof EventBase, true>;
const PAGE_FIELDS = { stream: true, events: true, last: true } satisfies Record<keyof FeedPage, true>;

/** What `@rollcall/client` and `@rollcall/robot` ask of the service. */
const CALLED = [
  'get /events',
  'get /events/stream',
  'get /.well-known/rollcall-keys',
  'post /devices',
  'get /devices/{id}/commands',
  'post /tasks/{id}/start',
  'post /tasks/{id}/complete',
  'post /tasks/{id}/reject',
  'post /tasks/{id}/abort',
];

describe("the client's types, against the OpenAPI document", () => {
  it('knows every event type the service publishes, and no other', () => {
    const events = feedSchema().properties.events!.items!;
    expect([...EVENT_TYPES].sort()).toEqual([...events.properties.type!.enum!].sort());
  });

  it('types the fields every event carries, and a feed page', () => {
    const feed = feedSchema();
    expect(feed.required?.sort()).toEqual(Object.keys(PAGE_FIELDS).sort());
    expect(feed.properties.events!.items!.required?.sort()).toEqual(Object.keys(EVENT_FIELDS).sort());
  });

  it('calls only operations the service has', () => {
    for (const call of CALLED) {
      const [method, path] = call.split(' ') as [string, string];
      expect(doc.paths[path]?.[method], call).toBeDefined();
    }
  });
});
