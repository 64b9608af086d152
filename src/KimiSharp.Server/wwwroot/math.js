// LaTeX math → MathML (rendered natively by the browser). Covers what chat answers use: fractions, roots, scripts,
// Greek letters, operators, big operators with limits, \left…\right, \text, font commands, matrices and cases.
// Elements are created one by one; unknown commands are shown as red text, never interpreted.

const NS = 'http://www.w3.org/1998/Math/MathML';
const m = (tag, ...children) => { const e = document.createElementNS(NS, tag); for (const c of children) e.append(c); return e; };
const leaf = (tag, text, attrs) => { const e = m(tag); e.textContent = text; if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]); return e; };

const greek = {
  alpha: 'α', beta: 'β', gamma: 'γ', delta: 'δ', epsilon: 'ϵ', varepsilon: 'ε', zeta: 'ζ', eta: 'η', theta: 'θ', vartheta: 'ϑ',
  iota: 'ι', kappa: 'κ', lambda: 'λ', mu: 'μ', nu: 'ν', xi: 'ξ', pi: 'π', varpi: 'ϖ', rho: 'ρ', sigma: 'σ', tau: 'τ',
  upsilon: 'υ', phi: 'ϕ', varphi: 'φ', chi: 'χ', psi: 'ψ', omega: 'ω', Gamma: 'Γ', Delta: 'Δ', Theta: 'Θ', Lambda: 'Λ',
  Xi: 'Ξ', Pi: 'Π', Sigma: 'Σ', Upsilon: 'Υ', Phi: 'Φ', Psi: 'Ψ', Omega: 'Ω', infty: '∞', ell: 'ℓ', hbar: 'ℏ',
  partial: '∂', nabla: '∇', emptyset: '∅', Re: 'ℜ', Im: 'ℑ', aleph: 'ℵ',
};
const operators = {
  times: '×', cdot: '⋅', div: '÷', pm: '±', mp: '∓', leq: '≤', le: '≤', geq: '≥', ge: '≥', neq: '≠', ne: '≠', approx: '≈',
  equiv: '≡', sim: '∼', simeq: '≃', propto: '∝', to: '→', rightarrow: '→', leftarrow: '←', Rightarrow: '⇒', Leftarrow: '⇐',
  leftrightarrow: '↔', Leftrightarrow: '⇔', mapsto: '↦', implies: '⟹', iff: '⟺', in: '∈', notin: '∉', subset: '⊂',
  subseteq: '⊆', supset: '⊃', supseteq: '⊇', cup: '∪', cap: '∩', setminus: '∖', wedge: '∧', land: '∧', vee: '∨', lor: '∨',
  neg: '¬', lnot: '¬', forall: '∀', exists: '∃', circ: '∘', ast: '∗', star: '⋆', bullet: '∙', ldots: '…', cdots: '⋯',
  dots: '…', vdots: '⋮', ddots: '⋱', langle: '⟨', rangle: '⟩', lfloor: '⌊', rfloor: '⌋', lceil: '⌈', rceil: '⌉', mid: '∣',
  parallel: '∥', perp: '⊥', angle: '∠', degree: '°', prime: '′', lbrace: '{', rbrace: '}', '{': '{', '}': '}', '|': '‖',
  ',': '\u2009', ';': '\u2005', ':': '\u2005', '!': '', quad: '\u2003', qquad: '\u2003\u2003', ' ': '\u00a0', '%': '%', '#': '#', '&': '&', '_': '_', '$': '$',
};
const bigOperators = { sum: '∑', prod: '∏', coprod: '∐', int: '∫', iint: '∬', iiint: '∭', oint: '∮', bigcup: '⋃', bigcap: '⋂' };
const functions = words('sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp det dim gcd max min sup inf lim liminf limsup arg deg ker Pr mod');
const accents = { hat: '^', bar: '¯', overline: '¯', vec: '→', dot: '˙', ddot: '¨', tilde: '~', widehat: '^', widetilde: '~' };
const fonts = { mathbf: 'bold', mathrm: 'normal', mathit: 'italic', mathbb: 'double-struck', mathcal: 'script', mathsf: 'sans-serif', mathtt: 'monospace', boldsymbol: 'bold-italic', operatorname: 'normal' };
const environments = { matrix: ['', ''], pmatrix: ['(', ')'], bmatrix: ['[', ']'], Bmatrix: ['{', '}'], vmatrix: ['|', '|'], Vmatrix: ['‖', '‖'], cases: ['{', ''], aligned: ['', ''], align: ['', ''], 'align*': ['', ''], array: ['', ''], gathered: ['', ''], split: ['', ''] };
function words(s) { return new Set(s.split(' ')); }

function tokenize(src) {
  const tokens = [];
  const re = /\\([A-Za-z]+\*?|.)|(\d+(?:\.\d+)?)|(\s+)|([\s\S])/g;
  let t;
  while ((t = re.exec(src))) {
    if (t[1] !== undefined) tokens.push({ cmd: t[1] });
    else if (t[2] !== undefined) tokens.push({ num: t[2] });
    else if (t[3] === undefined) tokens.push({ ch: t[4] });
  }
  return tokens;
}

class Parser {
  constructor(src, display) { this.t = tokenize(src); this.i = 0; this.display = display; }
  peek() { return this.t[this.i]; }
  next() { return this.t[this.i++]; }
  isEnd(tok, stops) {
    if (!tok) return true;
    if (tok.ch === '}' || tok.ch === ']' && stops.includes(']')) return true;
    if (tok.ch === '&' && stops.includes('&')) return true;
    if (tok.cmd && (tok.cmd === 'right' || tok.cmd === 'end' || (tok.cmd === '\\' && stops.includes('\\')))) return true;
    return false;
  }
  /** A sequence of atoms up to a closing token (not consumed). */
  expression(stops = []) {
    const row = m('mrow');
    while (!this.isEnd(this.peek(), stops)) {
      const atom = this.scripts(this.atom());
      if (atom) row.append(atom);
    }
    return row;
  }
  group() {
    const tok = this.peek();
    if (tok?.ch === '{') { this.next(); const e = this.expression(); if (this.peek()?.ch === '}') this.next(); return e; }
    return this.atom() ?? m('mrow');
  }
  rawGroup() {
    let text = '';
    if (this.peek()?.ch !== '{') return this.next()?.ch ?? '';
    this.next();
    let depth = 1;
    while (this.peek()) {
      const tok = this.next();
      if (tok.ch === '{') depth++;
      if (tok.ch === '}' && --depth === 0) break;
      text += tok.cmd !== undefined ? (operators[tok.cmd] ?? '\\' + tok.cmd) : tok.num ?? tok.ch;
    }
    return text;
  }
  scripts(base) {
    if (!base) return base;
    let sub = null, sup = null;
    while (this.peek()?.ch === '_' || this.peek()?.ch === '^' || this.peek()?.ch === "'") {
      const tok = this.next();
      if (tok.ch === "'") { sup = leaf('mo', '′'); continue; }
      const arg = this.group();
      if (tok.ch === '_') sub = arg; else sup = arg;
    }
    if (!sub && !sup) return base;
    const limits = base.getAttribute?.('data-limits') === 'true';
    if (sub && sup) return m(limits ? 'munderover' : 'msubsup', base, sub, sup);
    return sub ? m(limits ? 'munder' : 'msub', base, sub) : m(limits ? 'mover' : 'msup', base, sup);
  }
  atom() {
    const tok = this.next();
    if (!tok) return null;
    if (tok.num !== undefined) return leaf('mn', tok.num);
    if (tok.ch !== undefined) {
      if (tok.ch === '{') { const e = this.expression(); if (this.peek()?.ch === '}') this.next(); return e; }
      if (/[A-Za-z]/.test(tok.ch)) return leaf('mi', tok.ch);
      if (tok.ch === '~') return leaf('mtext', '\u00a0');
      if (tok.ch === '_' || tok.ch === '^') return leaf('mtext', tok.ch);
      return leaf('mo', tok.ch);
    }
    const c = tok.cmd;
    if (greek[c]) return leaf('mi', greek[c], /^[A-Z]/.test(c) ? { mathvariant: 'normal' } : undefined);
    if (c in operators) return leaf('mo', operators[c]);
    if (bigOperators[c]) { const o = leaf('mo', bigOperators[c], { largeop: 'true', movablelimits: 'true' }); if (!c.includes('int')) o.setAttribute('data-limits', 'true'); return o; }
    if (functions.has(c)) { const f = leaf('mi', c, { mathvariant: 'normal' }); if (c === 'lim' || c === 'max' || c === 'min' || c === 'sup' || c === 'inf') f.setAttribute('data-limits', 'true'); return f; }
    switch (c) {
      case 'frac': case 'dfrac': case 'tfrac': case 'binom': {
        const a = this.group(), b = this.group();
        if (c === 'binom') { const f = m('mfrac', a, b); f.setAttribute('linethickness', '0'); return m('mrow', leaf('mo', '('), f, leaf('mo', ')')); }
        return m('mfrac', a, b);
      }
      case 'sqrt': {
        if (this.peek()?.ch === '[') { this.next(); const n = this.expression([']']); this.next(); return m('mroot', this.group(), n); }
        return m('msqrt', this.group());
      }
      case 'text': case 'textrm': case 'textbf': case 'textit': case 'mbox': return leaf('mtext', this.rawGroup());
      case 'left': {
        const open = this.delimiter();
        const inner = this.expression();
        let close = '';
        if (this.peek()?.cmd === 'right') { this.next(); close = this.delimiter(); }
        const row = m('mrow');
        if (open) row.append(leaf('mo', open, { stretchy: 'true' }));
        row.append(inner);
        if (close) row.append(leaf('mo', close, { stretchy: 'true' }));
        return row;
      }
      case 'begin': return this.environment(this.rawGroup());
      case 'displaystyle': case 'textstyle': case 'limits': case 'nolimits': case 'big': case 'Big': case 'bigg': case 'Bigg': case 'bigl': case 'bigr': case 'Bigl': case 'Bigr': return null;
      case 'overset': case 'stackrel': { const top = this.group(); return m('mover', this.group(), top); }
      case 'underset': { const bottom = this.group(); return m('munder', this.group(), bottom); }
      case 'boxed': { const e = m('menclose', this.group()); e.setAttribute('notation', 'box'); return e; }
    }
    if (accents[c]) return m('mover', this.group(), leaf('mo', accents[c], { accent: 'true' }));
    if (fonts[c]) {
      const inner = c === 'operatorname' ? leaf('mi', this.rawGroup(), { mathvariant: 'normal' }) : this.group();
      for (const mi of [inner, ...inner.querySelectorAll('mi')]) if (mi.localName === 'mi') mi.setAttribute('mathvariant', fonts[c]);
      return inner;
    }
    return leaf('mtext', '\\' + c, { class: 'math-error' });
  }
  delimiter() {
    const tok = this.next();
    if (!tok) return '';
    if (tok.ch === '.') return '';
    if (tok.ch !== undefined) return tok.ch;
    return operators[tok.cmd] ?? (tok.cmd === 'vert' ? '|' : tok.cmd === 'Vert' ? '‖' : '');
  }
  environment(name) {
    if (name === 'array' && this.peek()?.ch === '{') this.rawGroup();
    const table = m('mtable');
    let row = m('mtr');
    while (this.peek()) {
      const cell = this.expression(['&', '\\']);
      row.append(m('mtd', cell));
      const tok = this.next();
      if (!tok || tok.cmd === 'end') { this.rawGroup(); break; }
      if (tok.cmd === '\\') { table.append(row); row = m('mtr'); }
      if (tok.ch === '}') break;
    }
    if (row.childNodes.length) table.append(row);
    if (name.startsWith('align') || name === 'aligned' || name === 'cases' || name === 'split') table.setAttribute('columnalign', name === 'cases' ? 'left left' : 'right left');
    const [open, close] = environments[name] ?? ['', ''];
    const wrapped = m('mrow');
    if (open) wrapped.append(leaf('mo', open, { stretchy: 'true' }));
    wrapped.append(table);
    if (close) wrapped.append(leaf('mo', close, { stretchy: 'true' }));
    return wrapped;
  }
}

/** TeX source → a <math> element (display or inline). */
export function renderMath(tex, display) {
  const math = m('math');
  if (display) math.setAttribute('display', 'block');
  try {
    const parser = new Parser(tex, display);
    const row = m('mrow');
    while (parser.peek()) {
      row.append(parser.expression());
      parser.next(); // a stray closing brace or \right: skip it
    }
    const semantics = m('semantics', row, leaf('annotation', tex, { encoding: 'application/x-tex' }));
    math.append(semantics);
  } catch {
    math.append(leaf('mtext', tex, { class: 'math-error' }));
  }
  return math;
}
