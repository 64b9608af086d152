// Conversations in IndexedDB (one record per conversation, its whole message tree), settings in localStorage.

const DB_NAME = 'kimi-chat', STORE = 'conversations';
let dbPromise = null;

function db() {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE, { keyPath: 'id' });
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  return dbPromise;
}

async function run(mode, action) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const tx = database.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

export const loadConversations = () => run('readonly', s => s.getAll());
export const saveConversation = conversation => run('readwrite', s => s.put(JSON.parse(JSON.stringify(conversation))));
export const deleteConversation = id => run('readwrite', s => s.delete(id));

const SETTINGS_KEY = 'kimi.settings', API_KEY = 'kimi.apiKey';
export const defaultSettings = { systemPrompt: '', thinking: true, temperature: '', topP: '', maxTokens: '', tools: true, theme: 'auto' };

export function loadSettings() {
  try { return { ...defaultSettings, ...JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}') }; }
  catch { return { ...defaultSettings }; }
}
export const saveSettings = settings => localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
export const loadApiKey = () => localStorage.getItem(API_KEY) ?? '';
export function saveApiKey(key) { if (key) localStorage.setItem(API_KEY, key); else localStorage.removeItem(API_KEY); }
