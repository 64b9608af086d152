// The chat page: conversations as message trees (edits and regenerations are branches), streamed answers with
// reasoning, tool cards and statistics, a sidebar of stored conversations, and settings.
import { renderMarkdown, copyText } from './markdown.js';
import { ApiError, getJson, stream, describe } from './api.js';
import * as store from './store.js';

const $ = id => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const newId = () => (crypto.randomUUID?.() ?? Date.now().toString(36) + Math.random().toString(36).slice(2));
const now = () => performance.now();

const state = {
  settings: store.loadSettings(),
  apiKey: store.loadApiKey(),
  config: null,
  conversations: [],
  current: null,
  streaming: null, // { controller, conversation, node }
  attachments: [],
};
// Live views of assistant messages being rendered: node id → { parts: elements, … }.
const views = new Map();

// ---------- conversations as trees ----------

function newConversation() {
  const root = { id: 'root', role: 'root', children: [], active: null };
  return { id: newId(), title: 'New chat', created: Date.now(), updated: Date.now(), nodes: { root } };
}

function addNode(conversation, parentId, node) {
  node.id = newId();
  node.parent = parentId;
  node.children = [];
  node.active = null;
  node.created = Date.now();
  conversation.nodes[node.id] = node;
  const parent = conversation.nodes[parentId];
  parent.children.push(node.id);
  parent.active = node.id;
  return node;
}

/** The messages shown: from the root, following each node's chosen child. */
function activePath(conversation) {
  const path = [];
  let node = conversation.nodes.root;
  while (node.active && conversation.nodes[node.active]) { node = conversation.nodes[node.active]; path.push(node); }
  return path;
}

/** The API messages for a request that answers `upTo` (a user node), from the path above it. */
function apiMessages(conversation, upTo) {
  const chain = [];
  for (let n = upTo; n && n.role !== 'root'; n = conversation.nodes[n.parent]) chain.unshift(n);
  const messages = [];
  if (state.settings.systemPrompt.trim()) messages.push({ role: 'system', content: state.settings.systemPrompt });
  for (const n of chain) {
    if (n.role === 'user') messages.push({ role: 'user', content: userContent(n) });
    else if (n.turnMessages?.length) messages.push(...n.turnMessages);
    else {
      const text = n.parts.filter(p => p.type === 'content').map(p => p.text).join('');
      if (text) messages.push({ role: 'assistant', content: text });
    }
  }
  return messages;
}

function userContent(node) {
  if (!node.images?.length) return node.content;
  return [{ type: 'text', text: node.content }, ...node.images.map(url => ({ type: 'image_url', image_url: { url } }))];
}

function touch(conversation) {
  conversation.updated = Date.now();
  if (conversation.title === 'New chat') {
    const first = activePath(conversation).find(n => n.role === 'user');
    if (first) conversation.title = first.content.replace(/\s+/g, ' ').trim().slice(0, 48) || 'New chat';
  }
  if (!state.conversations.includes(conversation)) state.conversations.push(conversation);
  if (conversation === state.current) localStorage.setItem('kimi.current', conversation.id); // reopened after a reload
  return store.saveConversation(conversation).catch(e => console.error('saving the conversation failed', e));
}

// ---------- sending and streaming ----------

function numberSetting(value) {
  if (value === '' || value === null || value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : value; // let the server name a bad value
}

async function send(text) {
  if (state.streaming || !text.trim() && !state.attachments.length) return;
  if (!state.current) state.current = newConversation();
  const conversation = state.current;
  const path = activePath(conversation);
  const parentId = path.length ? path[path.length - 1].id : 'root';
  const user = addNode(conversation, parentId, { role: 'user', content: text, images: state.attachments.length ? state.attachments.slice() : undefined });
  state.attachments = [];
  renderAttachments();
  $('input').value = '';
  autosize();
  await generate(conversation, user);
}

/** Streams a new answer to the user node `user` (a new child, so earlier answers stay as branches). */
async function generate(conversation, user) {
  const agent = state.settings.tools;
  const node = addNode(conversation, user.id, { role: 'assistant', parts: [], mode: agent ? 'agent' : 'chat', stats: null });
  touch(conversation);
  renderAll();
  renderSidebar();
  const controller = new AbortController();
  state.streaming = { controller, conversation, node };
  setStreamingUi(true);
  const timing = { start: now(), first: null, reasoningStart: null };
  const s = state.settings;
  const body = {
    model: state.config?.model,
    messages: apiMessages(conversation, user),
    temperature: numberSetting(s.temperature),
    top_p: numberSetting(s.topP),
    max_tokens: numberSetting(s.maxTokens),
  };
  if (agent) body.thinking = s.thinking;
  else {
    body.stream = true;
    body.stream_options = { include_usage: true };
    body.chat_template_kwargs = { thinking: s.thinking };
  }
  let usage = null;
  try {
    const events = stream(agent ? '/v1/agent/chat' : '/v1/chat/completions', body, state.apiKey, controller.signal);
    for await (const { event, data } of events) {
      if (agent) usage = onAgentEvent(node, event, data, timing) ?? usage;
      else usage = onChatChunk(node, data, timing) ?? usage;
      scheduleRender(node);
    }
    closeReasoning(node, timing);
  } catch (e) {
    closeReasoning(node, timing);
    if (e.name === 'AbortError') node.stopped = true;
    else {
      node.error = describe(e, state.config?.context_length);
      node.errorStatus = e.status;
      if (e instanceof ApiError && e.status === 401) askForKey();
    }
  } finally {
    const end = now();
    node.stats = stats(usage, timing, end, node);
    state.streaming = null;
    setStreamingUi(false);
    if (!conversation.deleted) await touch(conversation); // deleting it stopped the answer: do not store it again
    views.delete(node.id);
    renderAll();
    renderSidebar();
  }
}

function stats(usage, timing, end, node) {
  const completion = usage?.completion_tokens;
  const generating = timing.first !== null ? (end - timing.first) / 1000 : 0;
  return {
    completionTokens: completion ?? null,
    promptTokens: usage?.prompt_tokens ?? null,
    cachedTokens: usage?.prompt_tokens_details?.cached_tokens ?? null,
    steps: usage?.steps ?? null,
    tokensPerSecond: completion && generating > 0 ? completion / generating : null,
    ttftMs: timing.first !== null ? timing.first - timing.start : null,
    totalMs: end - timing.start,
    finish: node.finish ?? null,
  };
}

function lastPart(node, type) {
  const last = node.parts[node.parts.length - 1];
  if (last?.type === type) return last;
  const part = { type, text: '' };
  node.parts.push(part);
  return part;
}

function addText(node, type, text, timing) {
  if (!text) return;
  if (timing.first === null) timing.first = now();
  if (type === 'reasoning') {
    if (node.parts[node.parts.length - 1]?.type !== 'reasoning') timing.reasoningStart = now();
  } else closeReasoning(node, timing);
  lastPart(node, type).text += text;
}

/** The reasoning part that was streaming is over: record how long it took. */
function closeReasoning(node, timing) {
  const part = node.parts[node.parts.length - 1];
  if (part?.type === 'reasoning' && part.ms === undefined && timing.reasoningStart !== null) {
    part.ms = now() - timing.reasoningStart;
    timing.reasoningStart = null;
  }
}

function onChatChunk(node, chunk, timing) {
  const choice = chunk.choices?.[0];
  if (choice) {
    const delta = choice.delta ?? {};
    addText(node, 'reasoning', delta.reasoning_content, timing);
    addText(node, 'content', delta.content, timing);
    if (choice.finish_reason) node.finish = choice.finish_reason;
  }
  return chunk.usage ?? null;
}

function onAgentEvent(node, event, data, timing) {
  switch (event) {
    case 'reasoning': addText(node, 'reasoning', data.text, timing); break;
    case 'answer': addText(node, 'content', data.text, timing); break;
    case 'tool_call':
      closeReasoning(node, timing);
      node.parts.push({ type: 'tool', id: data.id, name: data.name, arguments: data.arguments, result: null, isError: false });
      break;
    case 'tool_result': {
      const card = [...node.parts].reverse().find(p => p.type === 'tool' && p.id === data.id);
      if (card) { card.result = data.content; card.isError = data.is_error; }
      break;
    }
    case 'usage': return data;
    case 'done':
      node.turnMessages = data.messages;
      node.finish = data.stop_reason;
      break;
  }
  return null;
}

function stop() { state.streaming?.controller.abort(); }

// ---------- rendering ----------

function renderAll() {
  const box = $('messages');
  const conversation = state.current;
  $('title').textContent = conversation?.title ?? 'New chat';
  const path = conversation ? activePath(conversation) : [];
  if (!path.length) {
    const empty = el('div', 'empty');
    empty.append(el('p', null, state.config ? `Ask ${state.config.model} anything.` : 'Connecting to the server…'),
      el('p', null, state.settings.tools ? 'Tools are on: the model can use the calculator, unit conversion, calendar, lookup and memory.' : ''));
    box.replaceChildren(empty);
    return;
  }
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  box.replaceChildren(...path.map(n => n.role === 'user' ? renderUser(conversation, n) : renderAssistant(conversation, n)));
  if (nearBottom || state.streaming) box.scrollTop = box.scrollHeight;
}

function branchSwitcher(conversation, node) {
  const parent = conversation.nodes[node.parent];
  if (!parent || parent.children.length < 2) return null;
  const index = parent.children.indexOf(node.id);
  const box = el('span', 'branch');
  const prev = el('button', 'branch-prev', '‹'), next = el('button', 'branch-next', '›');
  prev.type = next.type = 'button';
  prev.title = 'Previous version'; next.title = 'Next version';
  prev.disabled = index === 0 || !!state.streaming;
  next.disabled = index === parent.children.length - 1 || !!state.streaming;
  prev.onclick = () => switchBranch(conversation, parent, index - 1);
  next.onclick = () => switchBranch(conversation, parent, index + 1);
  box.append(prev, el('span', 'branch-index', `${index + 1}/${parent.children.length}`), next);
  return box;
}

function switchBranch(conversation, parent, index) {
  parent.active = parent.children[index];
  touch(conversation);
  renderAll();
}

function renderUser(conversation, node) {
  const wrap = el('div', 'msg user');
  wrap.dataset.id = node.id;
  const bubble = el('div', 'bubble', node.content);
  for (const url of node.images ?? []) { const img = el('img'); img.src = url; img.alt = 'attached image'; bubble.append(img); }
  const actions = el('div', 'actions');
  const edit = el('button', 'edit', '✎ Edit');
  edit.type = 'button';
  edit.disabled = !!state.streaming;
  edit.onclick = () => startEdit(conversation, node, wrap);
  const switcher = branchSwitcher(conversation, node);
  if (switcher) actions.append(switcher);
  actions.append(edit);
  wrap.append(bubble, actions);
  return wrap;
}

function startEdit(conversation, node, wrap) {
  const area = el('textarea', 'edit-input');
  area.value = node.content;
  const save = el('button', 'primary save-edit', 'Send'), cancel = el('button', 'cancel-edit', 'Cancel');
  save.type = cancel.type = 'button';
  const actions = el('div', 'actions');
  actions.append(cancel, save);
  wrap.replaceChildren(area, actions);
  area.focus();
  cancel.onclick = () => renderAll();
  const submit = () => {
    const text = area.value;
    if (!text.trim() || state.streaming) return;
    // The edit is a sibling of the original: the old question and its answers stay reachable with ‹ ›.
    const edited = addNode(conversation, node.parent, { role: 'user', content: text, images: node.images });
    generate(conversation, edited);
  };
  save.onclick = submit;
  area.addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    if (e.key === 'Escape') { e.preventDefault(); renderAll(); }
  });
}

function renderAssistant(conversation, node) {
  const wrap = el('div', 'msg assistant');
  wrap.dataset.id = node.id;
  const body = el('div', 'body');
  const view = { body, parts: [], wrap };
  views.set(node.id, view);
  fillParts(node, view);
  wrap.append(body);
  wrap.append(footer(conversation, node));
  return wrap;
}

function footer(conversation, node) {
  const actions = el('div', 'actions');
  const live = state.streaming?.node === node;
  const switcher = branchSwitcher(conversation, node);
  if (switcher) actions.append(switcher);
  if (!live) {
    const copy = el('button', 'copy-answer', 'Copy');
    copy.type = 'button';
    copy.onclick = () => copyText(node.parts.filter(p => p.type === 'content').map(p => p.text).join(''));
    const regenerate = el('button', 'regenerate', '↻ Regenerate');
    regenerate.type = 'button';
    regenerate.disabled = !!state.streaming;
    regenerate.onclick = () => generate(conversation, conversation.nodes[node.parent]);
    actions.append(copy, regenerate);
  }
  if (node.stats) actions.append(el('span', 'stats', statsText(node.stats)));
  return actions;
}

function statsText(s) {
  const parts = [];
  if (s.completionTokens !== null) parts.push(`${s.completionTokens} tokens`);
  if (s.tokensPerSecond !== null) parts.push(`${s.tokensPerSecond.toFixed(1)} tok/s`);
  if (s.ttftMs !== null) parts.push(`TTFT ${Math.round(s.ttftMs)} ms`);
  if (s.promptTokens !== null) parts.push(`prompt ${s.promptTokens}${state.config ? '/' + state.config.context_length : ''}`);
  if (s.cachedTokens !== null) parts.push(`${s.cachedTokens} cached`);
  if (s.steps) parts.push(`${s.steps} steps`);
  if (s.finish === 'length') parts.push('stopped at max tokens');
  return parts.join(' · ');
}

/** Brings the DOM of an assistant message up to date, touching only parts that changed. */
function fillParts(node, view) {
  const live = state.streaming?.node === node;
  node.parts.forEach((part, i) => {
    let entry = view.parts[i];
    const isLast = i === node.parts.length - 1;
    if (!entry) {
      entry = { el: makePart(part, live && isLast), rendered: null };
      view.parts[i] = entry;
      view.body.append(entry.el);
    }
    const signature = part.type === 'tool' ? `${part.result !== null}` : `${part.text.length}:${part.ms}`;
    if (entry.rendered !== signature) { updatePart(part, entry.el, live && isLast); entry.rendered = signature; }
  });
  let tail = view.body.querySelector(':scope > .tail');
  if (!tail) { tail = el('div', 'tail'); view.body.append(tail); }
  view.body.append(tail); // keep it last
  tail.replaceChildren();
  if (live && !node.parts.length) tail.append(el('span', 'cursor waiting'));
  if (node.stopped) tail.append(el('div', 'stopped-note', 'Stopped.'));
  if (node.error) { const box = el('div', 'error-box', node.error); box.setAttribute('role', 'alert'); tail.append(box); }
  if (!live && !node.error && !node.stopped && !node.parts.some(p => p.type === 'content' && p.text.trim()))
    tail.append(el('div', 'stopped-note', node.finish === 'length' || node.finish === 'max-steps' || node.finish === 'token-budget'
      ? `No answer: the model stopped at its limit (${node.finish}).` : 'The model gave no answer text.'));
}

function makePart(part, live) {
  if (part.type === 'reasoning') {
    const details = el('details', 'reasoning');
    // Open while the reasoning streams (when thinking is shown), collapsed once it is done.
    details.open = live && state.settings.thinking;
    details.append(el('summary'), el('div', 'reasoning-body'));
    return details;
  }
  if (part.type === 'tool') {
    const card = el('div', 'tool-card');
    const head = el('div', 'tool-head');
    head.append(el('span', 'tool-badge', 'tool'), el('span', 'tool-name', part.name), el('span', 'tool-status'));
    card.append(head, el('div', 'label', 'Arguments'), el('pre', 'tool-args', prettyJson(part.arguments)), el('div', 'label result-label', 'Result'), el('pre', 'tool-result'));
    return card;
  }
  return el('div', 'markdown');
}

function updatePart(part, element, live) {
  if (part.type === 'reasoning') {
    const summary = element.querySelector('summary');
    summary.textContent = part.ms === undefined ? (live ? 'Thinking…' : 'Thoughts') : `Thought for ${Math.max(0.1, part.ms / 1000).toFixed(1)} s`;
    element.querySelector('.reasoning-body').textContent = part.text;
    if (part.ms !== undefined && element.dataset.closed !== 'yes') { element.open = false; element.dataset.closed = 'yes'; }
  } else if (part.type === 'tool') {
    const status = element.querySelector('.tool-status');
    status.textContent = part.result === null ? 'running…' : part.isError ? 'failed' : 'done';
    status.classList.toggle('failed', !!part.isError);
    element.querySelector('.tool-result').textContent = part.result ?? '';
  } else {
    element.replaceChildren(renderMarkdown(part.text));
    element.classList.toggle('cursor', live);
  }
}

function prettyJson(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

let renderPending = false;
function scheduleRender(node) {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    const view = views.get(node.id);
    if (!view || !view.wrap.isConnected) { renderAll(); return; }
    const box = $('messages');
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
    fillParts(node, view);
    if (nearBottom) box.scrollTop = box.scrollHeight;
  });
}

function setStreamingUi(on) {
  $('send').hidden = on;
  $('stop').hidden = !on;
  document.body.classList.toggle('streaming', on);
}

// ---------- sidebar ----------

function renderSidebar() {
  const query = $('search').value.trim().toLowerCase();
  const list = $('conversation-list');
  const items = state.conversations
    .filter(c => !query || c.title.toLowerCase().includes(query) ||
      Object.values(c.nodes).some(n => (n.content ?? '').toLowerCase().includes(query) || (n.parts ?? []).some(p => (p.text ?? '').toLowerCase().includes(query))))
    .sort((a, b) => b.updated - a.updated);
  list.replaceChildren(...items.map(c => {
    const li = el('li');
    li.dataset.id = c.id;
    if (c === state.current) li.classList.add('active');
    const open = el('button', 'open', c.title);
    open.type = 'button';
    open.title = c.title;
    open.onclick = () => openConversation(c);
    const rename = el('button', 'icon rename', '✎');
    rename.type = 'button';
    rename.title = 'Rename';
    rename.setAttribute('aria-label', 'Rename');
    rename.onclick = () => startRename(c, li);
    const remove = el('button', 'icon delete', '×');
    remove.type = 'button';
    remove.title = 'Delete';
    remove.setAttribute('aria-label', 'Delete');
    remove.onclick = () => removeConversation(c);
    li.append(open, rename, remove);
    return li;
  }));
}

function startRename(conversation, li) {
  const input = el('input', 'rename-input');
  input.value = conversation.title;
  li.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = save => {
    if (done) return;
    done = true;
    if (save && input.value.trim()) { conversation.title = input.value.trim(); store.saveConversation(conversation); }
    renderSidebar();
    renderAll();
  };
  input.addEventListener('keydown', e => { if (e.key === 'Enter') finish(true); if (e.key === 'Escape') finish(false); });
  input.addEventListener('blur', () => finish(true));
}

async function removeConversation(conversation) {
  conversation.deleted = true;
  if (state.streaming?.conversation === conversation) stop();
  await store.deleteConversation(conversation.id);
  state.conversations = state.conversations.filter(c => c !== conversation);
  if (state.current === conversation) state.current = null;
  renderSidebar();
  renderAll();
}

function openConversation(conversation) {
  if (state.streaming) return;
  state.current = conversation;
  localStorage.setItem('kimi.current', conversation.id);
  closeSidebar();
  renderSidebar();
  renderAll();
}

function closeSidebar() { $('app').classList.remove('sidebar-open'); }

function exportConversations() {
  const data = { format: 'kimisharp-chat', version: 1, exported: new Date().toISOString(), conversations: state.conversations };
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
  const a = el('a');
  a.href = URL.createObjectURL(blob);
  a.download = `kimi-conversations-${new Date().toISOString().slice(0, 10)}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

async function importConversations(file) {
  let data;
  try { data = JSON.parse(await file.text()); } catch (e) { return notice(`That file is not JSON: ${e.message}`); }
  const list = Array.isArray(data) ? data : data?.conversations;
  if (!Array.isArray(list)) return notice('That file is not a conversation export (no "conversations" list).');
  let count = 0;
  for (const c of list) {
    if (!c || typeof c.id !== 'string' || typeof c.nodes !== 'object' || !c.nodes?.root) continue;
    c.title = String(c.title ?? 'Imported chat');
    await store.saveConversation(c);
    state.conversations = state.conversations.filter(x => x.id !== c.id);
    state.conversations.push(c);
    count++;
  }
  notice(count ? `Imported ${count} conversation${count === 1 ? '' : 's'}.` : 'No conversations found in that file.');
  renderSidebar();
}

function notice(text) {
  const hint = $('composer-hint');
  hint.textContent = text;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { hint.textContent = ''; }, 6000);
}

// ---------- settings, key, theme ----------

function openSettings() {
  const s = state.settings;
  $('set-system').value = s.systemPrompt;
  $('set-thinking').checked = s.thinking;
  $('set-temperature').value = s.temperature;
  $('set-top-p').value = s.topP;
  $('set-max-tokens').value = s.maxTokens;
  $('set-api-key').value = state.apiKey;
  showDefaults();
  $('settings-dialog').showModal();
}

function showDefaults() {
  const c = state.config;
  if (!c) { $('defaults-hint').textContent = 'Empty fields use the server defaults.'; return; }
  const d = state.settings.tools ? c.agent_defaults : c.defaults;
  $('set-temperature').placeholder = d.temperature;
  $('set-top-p').placeholder = d.top_p;
  $('set-max-tokens').placeholder = d.max_tokens;
  $('defaults-hint').textContent = `Empty fields use the server defaults (${state.settings.tools ? 'with tools, max tokens is per step' : 'plain chat'}): ` +
    `temperature ${d.temperature}, top p ${d.top_p}, max tokens ${d.max_tokens}. Context: ${c.context_length} tokens.`;
}

function saveSettingsFromForm() {
  const s = state.settings;
  s.systemPrompt = $('set-system').value;
  s.thinking = $('set-thinking').checked;
  s.temperature = $('set-temperature').value;
  s.topP = $('set-top-p').value;
  s.maxTokens = $('set-max-tokens').value;
  store.saveSettings(s);
  const key = $('set-api-key').value.trim();
  if (key !== state.apiKey) { state.apiKey = key; store.saveApiKey(key); loadConfig(); }
}

function askForKey(message) {
  const dialog = $('key-dialog');
  $('key-error').hidden = !message;
  $('key-error').textContent = message ?? '';
  $('key-input').value = state.apiKey;
  if (!dialog.open) dialog.showModal();
  $('key-input').focus();
}

const themes = ['auto', 'light', 'dark'];
function applyTheme() {
  const theme = state.settings.theme;
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $('theme').title = `Theme: ${theme === 'auto' ? 'follows the system' : theme} (click to change)`;
  $('theme').textContent = theme === 'dark' ? '☾' : theme === 'light' ? '☀' : '◐';
}

async function loadConfig() {
  try {
    state.config = await getJson('/v1/ui/config', state.apiKey);
    $('model-info').textContent = `${state.config.model} · ${state.config.context_length.toLocaleString('en-US')} tokens`;
    $('attach').hidden = !state.config.vision;
    if ($('key-dialog').open) $('key-dialog').close();
    renderAll();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) askForKey(state.apiKey ? 'The server did not accept that key.' : undefined);
    else $('model-info').textContent = describe(e);
  }
}

// ---------- composer ----------

function autosize() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = Math.min(input.scrollHeight + 2, window.innerHeight * 0.4) + 'px';
}

function renderAttachments() {
  const box = $('attachments');
  box.hidden = !state.attachments.length;
  box.replaceChildren(...state.attachments.map((url, i) => {
    const img = el('img');
    img.src = url;
    img.alt = 'attachment (click to remove)';
    img.title = 'Click to remove';
    img.onclick = () => { state.attachments.splice(i, 1); renderAttachments(); };
    return img;
  }));
}

function addImages(files) {
  if (!state.config?.vision) return;
  for (const file of files) {
    if (!file.type.startsWith('image/')) continue;
    const reader = new FileReader();
    reader.onload = () => { state.attachments.push(reader.result); renderAttachments(); };
    reader.readAsDataURL(file);
  }
}

function wire() {
  $('composer').addEventListener('submit', e => { e.preventDefault(); send($('input').value); });
  $('input').addEventListener('keydown', e => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send($('input').value); }
  });
  $('input').addEventListener('input', autosize);
  $('input').addEventListener('paste', e => {
    const files = [...(e.clipboardData?.files ?? [])].filter(f => f.type.startsWith('image/'));
    if (files.length && state.config?.vision) { e.preventDefault(); addImages(files); }
  });
  document.addEventListener('keydown', e => { if (e.key === 'Escape' && state.streaming) { e.preventDefault(); stop(); } });
  $('stop').onclick = stop;
  $('attach').onclick = () => $('attach-file').click();
  $('attach-file').onchange = e => { addImages(e.target.files); e.target.value = ''; };
  $('tools').checked = state.settings.tools;
  $('tools').onchange = () => { state.settings.tools = $('tools').checked; store.saveSettings(state.settings); if (!state.current) renderAll(); };
  $('new-chat').onclick = $('new-chat-top').onclick = () => {
    if (state.streaming) return;
    state.current = null;
    localStorage.removeItem('kimi.current');
    closeSidebar();
    renderSidebar();
    renderAll();
    $('input').focus();
  };
  $('search').addEventListener('input', renderSidebar);
  $('export').onclick = exportConversations;
  $('import').onclick = () => $('import-file').click();
  $('import-file').onchange = e => { const f = e.target.files[0]; e.target.value = ''; if (f) importConversations(f); };
  $('open-settings').onclick = () => { closeSidebar(); openSettings(); };
  $('settings-cancel').onclick = () => $('settings-dialog').close();
  $('settings-reset').onclick = () => { $('set-temperature').value = ''; $('set-top-p').value = ''; $('set-max-tokens').value = ''; };
  $('settings-form').addEventListener('submit', e => { if (e.submitter?.value === 'save') saveSettingsFromForm(); });
  $('key-cancel').onclick = () => $('key-dialog').close();
  $('key-form').addEventListener('submit', e => {
    if (e.submitter?.value !== 'save' && e.submitter) return;
    state.apiKey = $('key-input').value.trim();
    store.saveApiKey(state.apiKey);
    loadConfig();
  });
  $('menu').onclick = () => $('app').classList.toggle('sidebar-open');
  $('backdrop').onclick = closeSidebar;
  $('backdrop').hidden = false;
  $('theme').onclick = () => {
    state.settings.theme = themes[(themes.indexOf(state.settings.theme) + 1) % themes.length];
    store.saveSettings(state.settings);
    applyTheme();
  };
}

async function start() {
  applyTheme();
  wire();
  renderAll();
  const config = loadConfig(); // in parallel with opening the stored conversations
  try { state.conversations = await store.loadConversations(); }
  catch (e) { notice(`This browser cannot store conversations: ${e.message}`); }
  const last = localStorage.getItem('kimi.current');
  state.current = state.conversations.find(c => c.id === last) ?? null;
  renderSidebar();
  renderAll();
  await config;
  $('input').focus();
  document.body.dataset.ready = 'true';
}

start();
