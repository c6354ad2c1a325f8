// The JavaScript peer of the Rust bot, for `make bench` (variant d): the same job written the
// idiomatic way in a hand-written JavaScript Worker. It checks the secret, parses the update,
// answers with the same reply in the response body, and inside waitUntil replaces the user and
// chat ids with keyed pseudonyms (HMAC-SHA-256, when ANALYTICS_ID_KEY is set, as the Rust bot
// does) and sends the same events as JSON to the same queue.

const HELP = "I am an example bot with analytics.\n/start - welcome\n/help - this help\n/ping - check that I am alive\n/menu - a menu with buttons";

function timingSafeEqual(a, b) {
  if (typeof a !== "string" || a.length !== b.length || b.length === 0) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

async function pseudonym(key, id) {
  if (id === null || id === undefined) return null;
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(String(id)));
  const view = new DataView(mac);
  // The first 52 bits, as a number.
  return view.getUint32(0) * 2 ** 20 + (view.getUint32(4) >>> 12);
}

let hmacKey = null;
async function idKey(secret) {
  if (!secret) return null;
  hmacKey ??= await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return hmacKey;
}

function reply(update) {
  const message = update.message;
  if (!message || typeof message.text !== "string" || !message.text.startsWith("/")) return null;
  const [head, ...rest] = message.text.slice(1).split(/\s+/);
  const [name] = head.split("@");
  const texts = { start: "Welcome! Try /menu.", help: HELP, ping: "pong", menu: "Choose:" };
  const command = name in texts ? name : "unknown";
  return {
    command,
    payload: rest.join(" "),
    body: { method: "sendMessage", chat_id: message.chat.id, text: texts[command] ?? HELP },
  };
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (request.method === "GET" && url.pathname === "/health") return new Response("ok");
    if (request.method !== "POST" || url.pathname !== "/telegram") return new Response("not found", { status: 404 });
    const received = Date.now();
    if (!timingSafeEqual(request.headers.get("X-Telegram-Bot-Api-Secret-Token"), env.TELEGRAM_WEBHOOK_SECRET ?? "")) {
      return new Response("missing or wrong secret token", { status: 401 });
    }
    let update;
    try {
      update = await request.json();
    } catch {
      return new Response("not a Telegram update", { status: 400 });
    }
    if (typeof update !== "object" || update === null || typeof update.update_id !== "number") {
      return new Response("not a Telegram update: missing update_id", { status: 400 });
    }
    const kind = Object.keys(update).find((k) => k !== "update_id") ?? "empty";
    const planned = reply(update);
    const from = update[kind]?.from?.id ?? null;
    const chat = update[kind]?.chat ?? null;
    const event = (kind_, name, extra) => ({
      id: crypto.randomUUID(),
      timestamp: Date.now(),
      kind: kind_,
      name,
      user_id: from,
      chat_id: chat?.id ?? null,
      ...extra,
    });
    const events = [event("update", kind, { properties: { update_id: String(update.update_id), chat_type: chat?.type } })];
    if (planned) {
      events.push(event("command", planned.command, { properties: planned.payload ? { source: planned.payload } : {} }));
    }
    events.push(event("performance", "handler", { duration_ms: Date.now() - received, properties: { command: planned?.command } }));
    if (env.ANALYTICS !== "off") {
      const send = async () => {
        const key = await idKey(env.ANALYTICS_ID_KEY);
        for (const e of events) {
          e.user_id = key ? await pseudonym(key, e.user_id) : null;
          e.chat_id = key ? await pseudonym(key, e.chat_id) : null;
        }
        const envelope = { version: 1, source: { worker: "js-bot", release: "bench" }, sent_at: Date.now(), events, dropped: {} };
        await env.ANALYTICS_QUEUE.send(envelope, { contentType: "json" });
      };
      ctx.waitUntil(send().catch((e) => console.error("queue send failed", e)));
    }
    return planned ? Response.json(planned.body) : new Response("");
  },
};
