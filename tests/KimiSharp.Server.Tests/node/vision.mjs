// Sends an image through the official Anthropic and OpenAI JavaScript SDKs and prints what they saw as JSON.
// Usage: node vision.mjs BASE_URL MODEL API_KEY PNG_BASE64
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const [baseUrl, model, apiKey, png] = process.argv.slice(2);
const openai = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey });
const anthropic = new Anthropic({ baseURL: baseUrl, apiKey });
const question = "What is in this picture?";
const result = {};

const message = await anthropic.messages.create({
  model, max_tokens: 6, temperature: 0,
  messages: [{ role: "user", content: [
    { type: "image", source: { type: "base64", media_type: "image/png", data: png } },
    { type: "text", text: question },
  ] }],
});
result.anthropic = {
  text: message.content.filter(b => b.type === "text").map(b => b.text).join(""),
  thinking: message.content.filter(b => b.type === "thinking").map(b => b.thinking).join(""),
  stop: message.stop_reason,
  usage: message.usage,
};

const chat = await openai.chat.completions.create({
  model, max_tokens: 6, temperature: 0,
  messages: [{ role: "user", content: [
    { type: "image_url", image_url: { url: `data:image/png;base64,${png}`, detail: "low" } },
    { type: "text", text: question },
  ] }],
});
result.openai = {
  text: chat.choices[0].message.content ?? "",
  thinking: chat.choices[0].message.reasoning_content ?? "",
  usage: chat.usage,
};

try {
  await anthropic.messages.create({
    model, max_tokens: 6,
    messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "SGVsbG8gd29ybGQ=" } }] }],
  });
  result.anthropicError = null;
} catch (e) {
  result.anthropicError = { status: e.status, type: e.error?.error?.type, message: e.error?.error?.message };
}
console.log(JSON.stringify(result));
