// A small, safe Markdown renderer (GFM tables, task lists, fenced code, $…$ / $$…$$ math). Model output is untrusted:
// everything is built with createElement/textContent (never innerHTML), and only http(s) and mailto links are made.
import { highlight } from './highlight.js';
import { renderMath } from './math.js';

const el = (tag, cls) => { const e = document.createElement(tag); if (cls) e.className = cls; return e; };

/** Markdown text → a DocumentFragment. `streaming` leaves an unclosed code fence open instead of treating it as text. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(text.replace(/\r\n?/g, '\n').split('\n'), fragment);
  return fragment;
}

const fenceRe = /^ {0,3}(`{3,}|~{3,})\s*([\w#+.-]*)/;
const headingRe = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const hrRe = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const listRe = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const quoteRe = /^ {0,3}>\s?(.*)$/;
const tableSepRe = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function startsBlock(line, next) {
  return fenceRe.test(line) || headingRe.test(line) || hrRe.test(line) || listRe.test(line) || quoteRe.test(line)
    || /^\s*\$\$/.test(line) || /^\s*\\\[/.test(line) || (line.includes('|') && next !== undefined && tableSepRe.test(next) && next.includes('-'));
}

function renderBlocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    let m;
    if ((m = fenceRe.exec(line))) {
      const fence = m[1], lang = m[2];
      const body = [];
      i++;
      while (i < lines.length && !isClosingFence(lines[i], fence)) body.push(lines[i++]);
      i++;
      parent.append(codeBlock(body.join('\n'), lang));
      continue;
    }
    if (/^\s*(\$\$|\\\[)/.test(line)) {
      const open = line.trim().startsWith('$$') ? '$$' : '\\[', close = open === '$$' ? '$$' : '\\]';
      let rest = line.trim().slice(open.length);
      const body = [];
      let closed = false;
      while (true) {
        const at = rest.indexOf(close);
        if (at >= 0) { body.push(rest.slice(0, at)); closed = true; i++; break; }
        body.push(rest);
        i++;
        if (i >= lines.length) break;
        rest = lines[i];
      }
      const block = el('div', 'math-block');
      block.append(closed ? renderMath(body.join('\n'), true) : document.createTextNode(open + body.join('\n')));
      parent.append(block);
      continue;
    }
    if ((m = headingRe.exec(line))) {
      const h = el('h' + m[1].length);
      h.append(renderInline(m[2]));
      parent.append(h);
      i++;
      continue;
    }
    if (hrRe.test(line)) { parent.append(el('hr')); i++; continue; }
    if (quoteRe.test(line)) {
      const body = [];
      while (i < lines.length && (m = quoteRe.exec(lines[i]))) { body.push(m[1]); i++; }
      const q = el('blockquote');
      renderBlocks(body, q);
      parent.append(q);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && tableSepRe.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      i = table(lines, i, parent);
      continue;
    }
    if (listRe.test(line)) { i = list(lines, i, parent); continue; }
    const para = [line];
    i++;
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i], lines[i + 1])) para.push(lines[i++]);
    const p = el('p');
    p.append(renderInline(para.join('\n')));
    parent.append(p);
  }
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cell = '', code = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '\\' && s[k + 1] === '|') { cell += '|'; k++; continue; }
    if (c === '`') code = !code;
    if (c === '|' && !code) { cells.push(cell.trim()); cell = ''; continue; }
    cell += c;
  }
  cells.push(cell.trim());
  return cells;
}

function table(lines, i, parent) {
  const head = splitRow(lines[i]);
  const aligns = splitRow(lines[i + 1]).map(c => c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : '');
  const t = el('table'), thead = el('thead'), tbody = el('tbody'), hr = el('tr');
  head.forEach((c, k) => { const th = el('th'); if (aligns[k]) th.style.textAlign = aligns[k]; th.append(renderInline(c)); hr.append(th); });
  thead.append(hr);
  i += 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes('|')) {
    const row = splitRow(lines[i]), tr = el('tr');
    for (let k = 0; k < head.length; k++) { const td = el('td'); if (aligns[k]) td.style.textAlign = aligns[k]; td.append(renderInline(row[k] ?? '')); tr.append(td); }
    tbody.append(tr);
    i++;
  }
  t.append(thead, tbody);
  parent.append(t);
  return i;
}

function list(lines, i, parent) {
  const first = listRe.exec(lines[i]);
  const indent = first[1].length, ordered = /\d/.test(first[2]);
  const l = el(ordered ? 'ol' : 'ul');
  if (ordered && parseInt(first[2], 10) !== 1) l.start = parseInt(first[2], 10);
  let m;
  while (i < lines.length && (m = listRe.exec(lines[i])) && m[1].length === indent && /\d/.test(m[2]) === ordered) {
    const contentIndent = m[1].length + m[2].length + 1;
    const body = [m[3]];
    i++;
    // Lines indented past the marker (or lazy continuation lines) belong to this item.
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        if (i + 1 < lines.length && lines[i + 1].trim() && leading(lines[i + 1]) >= contentIndent) { body.push(''); i++; continue; }
        break;
      }
      if (leading(next) >= contentIndent || (leading(next) > indent && listRe.test(next))) { body.push(next.slice(Math.min(leading(next), contentIndent))); i++; continue; }
      if (listRe.test(next) || startsBlock(next, lines[i + 1])) break;
      body.push(next);
      i++;
    }
    const li = el('li');
    const task = /^\[([ xX])\]\s+/.exec(body[0]);
    if (task) {
      const box = el('input');
      box.type = 'checkbox'; box.disabled = true; box.checked = task[1] !== ' ';
      li.append(box, ' ');
      body[0] = body[0].slice(task[0].length);
      li.className = 'task';
    }
    if (body.length === 1) li.append(renderInline(body[0]));
    else {
      const inner = document.createDocumentFragment();
      renderBlocks(body, inner);
      // A tight item is one paragraph: drop the <p> so the list stays compact.
      if (inner.firstChild?.nodeName === 'P') { const p = inner.firstChild; inner.replaceChild(document.createDocumentFragment(), p); li.append(...p.childNodes); }
      li.append(inner);
    }
    l.append(li);
    while (i < lines.length && !lines[i].trim() && i + 1 < lines.length && (m = listRe.exec(lines[i + 1])) && m[1].length === indent) i++;
  }
  parent.append(l);
  return i;
}

function isClosingFence(line, fence) {
  const t = line.trim();
  return t.length >= fence.length && [...t].every(c => c === fence[0]);
}

const leading = s => s.length - s.trimStart().length;

function codeBlock(code, lang) {
  const box = el('div', 'codeblock'), head = el('div', 'code-head'), name = el('span'), copy = el('button', 'copy');
  name.textContent = lang || 'text';
  copy.type = 'button';
  copy.textContent = 'Copy';
  copy.addEventListener('click', () => copyText(code).then(() => { copy.textContent = 'Copied'; setTimeout(() => { copy.textContent = 'Copy'; }, 1500); }));
  head.append(name, copy);
  const pre = el('pre'), c = el('code');
  if (lang) c.dataset.lang = lang;
  c.append(highlight(code, lang));
  pre.append(c);
  box.append(head, pre);
  return box;
}

/** Clipboard write with a fallback for pages the browser does not treat as secure. */
export async function copyText(text) {
  try { await navigator.clipboard.writeText(text); return; } catch { /* fall back below */ }
  const area = el('textarea');
  area.value = text;
  area.style.position = 'fixed'; area.style.opacity = '0';
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

/** A link target the page will follow: http(s) or mailto only, never javascript:, data: or relative paths. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw.trim());
    return url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'mailto:' ? url.href : null;
  } catch { return null; }
}

function link(text, href) {
  const url = safeUrl(href);
  if (!url) return document.createTextNode(text === href ? text : `${text} (${href})`);
  const a = el('a');
  a.href = url; a.target = '_blank'; a.rel = 'noopener noreferrer nofollow';
  a.append(text === href ? document.createTextNode(text) : renderInline(text));
  return a;
}

const inlineRules = [
  // [regex anchored with y, handler(match) → Node]
  [/\\([\\`*_{}[\]()#+\-.!|~$>])/y, m => document.createTextNode(m[1])],
  [/(`+)([\s\S]*?[^`])\1(?!`)/y, m => { const c = el('code'); c.textContent = m[2].replace(/^ (.*) $/, '$1'); return c; }],
  [/\$\$([^$]+?)\$\$/y, m => renderMath(m[1], true)],
  [/\$(?=\S)([^$\n]*?\S)\$(?!\d)/y, m => renderMath(m[1], false)],
  [/\\\(([\s\S]+?)\\\)/y, m => renderMath(m[1], false)],
  [/!?\[([^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/y, m => link(m[1] || m[2], m[2])],
  [/<(https?:\/\/[^>\s]+)>/y, m => link(m[1], m[1])],
  [/https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*_~]/y, m => link(m[0], m[0])],
  [/(\*\*|__)(?=\S)([\s\S]*?\S)\1/y, m => wrap('strong', m[2])],
  [/~~(?=\S)([\s\S]*?\S)~~/y, m => wrap('del', m[1])],
  [/([*_])(?=[^\s*_])([\s\S]*?[^\s\\])\1(?![\w])/y, m => wrap('em', m[2])],
  [/ {2,}\n|\\\n|\n/y, () => el('br')],
];
const specials = /[\\`$![<h*_~\n ]/g;

function wrap(tag, inner) { const e = el(tag); e.append(renderInline(inner)); return e; }

/** Inline Markdown → nodes. */
export function renderInline(text) {
  const out = document.createDocumentFragment();
  let plain = '', i = 0;
  const flush = () => { if (plain) { out.append(document.createTextNode(plain)); plain = ''; } };
  while (i < text.length) {
    specials.lastIndex = i;
    const next = specials.exec(text);
    if (!next) { plain += text.slice(i); break; }
    plain += text.slice(i, next.index);
    i = next.index;
    let matched = false;
    // Intraword underscores (snake_case) are not emphasis.
    if (text[i] === '_' && i > 0 && /\w/.test(text[i - 1])) { plain += '_'; i++; continue; }
    for (const [re, make] of inlineRules) {
      re.lastIndex = i;
      const m = re.exec(text);
      if (m && m.index === i && m[0].length > 0) {
        flush();
        out.append(make(m));
        i += m[0].length;
        matched = true;
        break;
      }
    }
    if (!matched) { plain += text[i]; i++; }
  }
  flush();
  return out;
}
