export { EventClient, type EventClientOptions } from './client.ts';
export {
  EVENT_TYPES,
  type DisconnectReason,
  type EventBase,
  type EventOf,
  type EventType,
  type RollcallEvent,
} from './events.ts';
export {
  StreamFollower,
  type CursorStore,
  type FeedPage,
  type FollowerCounts,
  type FollowerOptions,
} from './follow.ts';
export { KeySet, canonicalJson, parseFrame, type PublicJwk } from './signatures.ts';
export { sseMessages, type SseMessage } from './sse.ts';
