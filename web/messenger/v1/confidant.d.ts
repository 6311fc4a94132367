// TypeScript types for the Confidant messenger loader (messenger/v1/loader.js, version 1.x).
//
// The loader is a classic script that defines one global, `window.Confidant`; these are global
// declarations for it. Pick them up in your editor or build in either way:
//   - save this file in your project and add it to tsconfig.json ("files" or "include"), or
//   - put `/// <reference path="./confidant.d.ts" />` at the top of the file that uses Confidant.
// Served by every Confidant server at /messenger/v1/confidant.d.ts. Reference: docs/JS-API.md.

declare namespace Confidant {
  /** Options of `Confidant.init`. Give at least one of `contactJwt`, `accessToken`, `getToken`. */
  interface InitOptions {
    /** Your site id, e.g. `10000` (a numeric string is accepted too). */
    siteId: number | string;
    /** The messenger to show (a UUID). */
    messengerId: string;
    /** A Contact JWT your backend signed for the signed-in customer; the loader exchanges it (authorize). */
    contactJwt?: string | null;
    /** An access token your backend got from `POST /securemessage/authorize`. */
    accessToken?: string | null;
    /**
     * Called again about 60 seconds before the current access token expires (and when the live
     * connection is refused, and at `init` when no other credential is given). Answer a fresh
     * Contact JWT or access token for the same customer. A rejection is retried with backoff
     * while the current token is valid, then reported as an `error` event.
     */
    getToken?: () => string | PromiseLike<string>;
  }

  /** `window.ConfidantSettings`: read once when the loader runs, merged over the installation code's data attributes. */
  type Settings = Partial<InitOptions>;

  /** Payload of the `ready` event: the conversation is loaded and the customer can write (once per `init`). */
  interface ReadyEvent {
    siteId: number;
    messengerId: string;
  }

  type SenderType = 'contact' | 'agent' | 'system';

  interface Sender {
    type: SenderType;
    id: string;
    name: string;
  }

  /** A file carried by a message. */
  interface Attachment {
    attachmentId: string;
    filename: string;
    /** What the bytes are (their signature), e.g. `application/pdf`. */
    contentType: string;
    /** Bytes. */
    size: number;
  }

  /** Payload of the `message` event: a message that arrived live (CONTRACT §7). */
  interface Message {
    messageId: string;
    conversationId: string;
    /** 1, 2, 3, … within the conversation, without gaps. */
    seq: number;
    sender: Sender;
    /** Text; may be empty when the message carries attachments. */
    body: string;
    clientMessageId: string | null;
    /** RFC 3339. */
    createdAt: string;
    /** Absent when the message carries no file. */
    attachments?: Attachment[];
  }

  /**
   * The codes an `error` event carries: CONTRACT §3 and §6's codes, and `network` (the frame
   * could not reach the server). Other strings may come from newer servers.
   */
  type ErrorCode =
    | 'invalid_request'
    | 'unauthorized'
    | 'forbidden'
    | 'origin_not_allowed'
    | 'not_found'
    | 'messenger_not_found'
    | 'payload_too_large'
    | 'unsupported_media_type'
    | 'rate_limited'
    | 'unavailable'
    | 'jwks_unavailable'
    | 'token_malformed'
    | 'algorithm_not_allowed'
    | 'key_not_found'
    | 'signature_invalid'
    | 'expiry_missing'
    | 'token_expired'
    | 'token_not_yet_valid'
    | 'token_lifetime_too_long'
    | 'issuer_mismatch'
    | 'audience_mismatch'
    | 'identity_missing'
    | 'network'
    | (string & {});

  /** Payload of the `error` event. */
  interface ErrorEvent {
    code: ErrorCode;
    /** For people; never a token. */
    message: string;
  }

  /** Every event of `Confidant.on` and its payload. */
  interface EventMap {
    ready: ReadyEvent;
    message: Message;
    /** The count of agent and system messages the customer has not seen. */
    unread: number;
    error: ErrorEvent;
  }

  type EventName = keyof EventMap;

  type Listener<K extends EventName> = (payload: EventMap[K]) => void;

  /** `window.Confidant` (a frozen object). */
  interface Api {
    /** The loader's version, e.g. `"1.0.0"`. */
    readonly version: string;
    /**
     * Starts the messenger for one customer (a running one is shut down first). Resolves `true`
     * when the messenger is shown, `false` when it is not (an `error` event says why); never rejects.
     */
    readonly init: (options: InitOptions) => Promise<boolean>;
    /** The customer logged out: removes the messenger and forgets every token it kept. Listeners stay. */
    readonly shutdown: () => void;
    /** Shows the conversation (honoured once the messenger is built, when called right after `init`). */
    readonly open: () => void;
    /** Hides the conversation. */
    readonly close: () => void;
    /** Adds a listener; returns a function that removes it. An unknown event name throws. */
    readonly on: <K extends EventName>(event: K, listener: Listener<K>) => () => void;
    /** Removes a listener added with `on`. */
    readonly off: <K extends EventName>(event: K, listener: Listener<K>) => void;
  }
}

/** The Confidant messenger's browser API; exists once the loader has run (see the `confidant:loaded` event). */
declare var Confidant: Confidant.Api;

interface Window {
  /** Defined by messenger/v1/loader.js. */
  readonly Confidant: Confidant.Api;
  /** Optional settings the loader reads when it runs (instead of, or over, the data attributes). */
  ConfidantSettings?: Confidant.Settings;
}

interface WindowEventMap {
  /** Fired on `window` once the loader has defined `window.Confidant`. */
  'confidant:loaded': CustomEvent<{ version: string }>;
}
