// Syntax highlighting for code blocks: one tokenizer with per-language keyword sets. Returns text nodes and
// <span class="hl-…"> elements only, so code from the model is never parsed as HTML.

const words = s => new Set(s.split(' '));
const cLike = 'if else for while do switch case default break continue return goto try catch finally throw new delete this true false null void sizeof typeof';
const languages = {
  js: { kw: words(`${cLike} var let const function class extends super import export from as async await yield of in instanceof undefined static get set`), line: '//', block: true, tpl: true },
  ts: { kw: words(`${cLike} var let const function class extends super import export from as async await yield of in instanceof undefined interface type enum implements private public protected readonly any number string boolean`), line: '//', block: true, tpl: true },
  python: { kw: words('and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield self print len range'), line: '#', triple: true },
  csharp: { kw: words(`${cLike} using namespace class struct record interface enum public private protected internal static readonly const var async await foreach in out ref params override virtual abstract sealed get set init value is as base string int long double float bool decimal object`), line: '//', block: true },
  c: { kw: words(`${cLike} int long short char float double unsigned signed struct union enum typedef static const extern inline auto register volatile include define bool`), line: '//', block: true },
  cpp: { kw: words(`${cLike} int long short char float double unsigned signed struct union enum typedef static const extern inline auto class public private protected template typename namespace using virtual override nullptr bool std include define`), line: '//', block: true },
  java: { kw: words(`${cLike} class interface enum extends implements public private protected static final abstract import package var int long double float boolean char void`), line: '//', block: true },
  go: { kw: words('break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false'), line: '//', block: true, tpl: true },
  rust: { kw: words('as async await break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while dyn'), line: '//', block: true },
  bash: { kw: words('if then else elif fi for while do done case esac function in return export local echo set unset exit'), line: '#' },
  sql: { kw: words('select from where and or not insert into values update set delete create table drop alter join left right inner outer on group by order having limit as distinct null is in like between union all primary key'), line: '--', block: true, nocase: true },
  json: { kw: words('true false null') },
};
const aliases = { javascript: 'js', jsx: 'js', mjs: 'js', typescript: 'ts', tsx: 'ts', py: 'python', cs: 'csharp', 'c#': 'csharp', h: 'c', 'c++': 'cpp', hpp: 'cpp', cc: 'cpp', kotlin: 'java', rs: 'rust', sh: 'bash', shell: 'bash', zsh: 'bash', console: 'bash', golang: 'go' };

function span(cls, text) { const s = document.createElement('span'); s.className = cls; s.textContent = text; return s; }

/** Highlights `code` as `lang` (unknown languages come back as plain text). */
export function highlight(code, lang) {
  const out = document.createDocumentFragment();
  const spec = languages[aliases[(lang || '').toLowerCase()] ?? (lang || '').toLowerCase()];
  if (!spec) { out.append(document.createTextNode(code)); return out; }
  let plain = '';
  const flush = () => { if (plain) { out.append(document.createTextNode(plain)); plain = ''; } };
  let i = 0;
  while (i < code.length) {
    const c = code[i], rest = code.startsWith.bind(code);
    let end = -1, cls = null;
    if (spec.line && rest(spec.line, i)) { end = code.indexOf('\n', i); if (end < 0) end = code.length; cls = 'hl-com'; }
    else if (spec.block && rest('/*', i)) { end = code.indexOf('*/', i + 2); end = end < 0 ? code.length : end + 2; cls = 'hl-com'; }
    else if (spec.triple && (rest('"""', i) || rest("'''", i))) { const q = code.substr(i, 3); end = code.indexOf(q, i + 3); end = end < 0 ? code.length : end + 3; cls = 'hl-str'; }
    else if (c === '"' || c === "'" || (c === '`' && spec.tpl)) {
      end = i + 1;
      while (end < code.length && code[end] !== c && (c === '`' || code[end] !== '\n')) end += code[end] === '\\' ? 2 : 1;
      end = Math.min(code.length, end + 1);
      cls = 'hl-str';
    }
    else if (/[0-9]/.test(c) && !/[\w$]/.test(code[i - 1] ?? '')) { const m = /^(0x[\da-f]+|\d[\d_]*(\.\d+)?(e[+-]?\d+)?)[a-z]*/i.exec(code.slice(i, i + 40)); end = i + m[0].length; cls = 'hl-num'; }
    else if (/[A-Za-z_$]/.test(c) && !/[\w$]/.test(code[i - 1] ?? '')) {
      const m = /^[A-Za-z_$][\w$]*/.exec(code.slice(i, i + 80));
      const word = m[0];
      end = i + word.length;
      if (spec.kw.has(spec.nocase ? word.toLowerCase() : word)) cls = 'hl-kw';
      else if (code[end] === '(') cls = 'hl-fn';
      else { plain += word; i = end; continue; }
    }
    if (cls) { flush(); out.append(span(cls, code.slice(i, end))); i = end; }
    else { plain += c; i++; }
  }
  flush();
  return out;
}
