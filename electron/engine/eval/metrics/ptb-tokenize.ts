// Caption tokenisation as pycocoevalcap does it before scoring: Stanford CoreNLP's PTBTokenizer with -preserveLines
// -lowerCase, then its PUNCTUATIONS filter. CoreNLP is Java; this is a rule-for-rule approximation of the parts that
// captions exercise (tools/metric_reference.py states the same rules independently, and both are checked against
// the hand-written table in testdata/captions.json):
// - punctuation is split off words: . , ? ! ; : and quotes ("→`` '', '→` '), all of them then dropped;
// - clitics n't 's 're 've 'll 'd 'm become their own tokens and are kept ("don't" → "do n't", "can't" → "ca n't");
// - hyphenated words (red-and-white), decimals (3.5) and thousands (1,000) stay whole; ... and -- are one token
//   each (dropped); $ % & and other symbols stand alone (kept);
// - brackets become -LRB- -RRB- -LSB- -RSB- -LCB- -RCB-, which -lowerCase turns into -lrb- …: pycocoevalcap's filter
//   lists them in upper case only, so they survive as words in its scores, and here too.
// Not reproduced: abbreviations with periods (Mr., U.S.), escaping of / and * (black\/white), URLs, British →
// American respelling, and the assimilations (cannot, gonna), whose default changed between CoreNLP versions.

/** pycocoevalcap's PUNCTUATIONS: tokens dropped after tokenisation (compared with the lowercased token). */
const DROPPED = new Set(["''", "'", '``', '`', '-LRB-', '-RRB-', '-LCB-', '-RCB-', '.', '?', '!', ',', ':', '-', '--', '...', ';']);
const BRACKETS: Record<string, string> = { '(': '-LRB-', ')': '-RRB-', '[': '-LSB-', ']': '-RSB-', '{': '-LCB-', '}': '-RCB-' };
const CLITICS = ["'s", "'m", "'d", "'re", "'ve", "'ll"];

const isAlnum = (c: string | undefined): boolean => c !== undefined && /^[\p{L}\p{N}]$/u.test(c);
const isDigit = (c: string | undefined): boolean => c !== undefined && /^\p{N}$/u.test(c);
const isAlpha = (c: string | undefined): boolean => c !== undefined && /^\p{L}$/u.test(c);

/** A word with its clitics split off ("car's" → car 's, "won't" → wo n't). */
function splitClitics(word: string): string[] {
  const low = word.toLowerCase();
  for (const c of CLITICS) {
    if (low.endsWith(c) && word.length > c.length) return [...splitClitics(word.slice(0, -c.length)), word.slice(-c.length)];
  }
  if (low.endsWith("n't") && word.length > 3) return [word.slice(0, -3), word.slice(-3)];
  return [word];
}

/** PTB tokens in CoreNLP's normalised spelling, before lowercasing and filtering. */
export function ptbTokens(text: string): string[] {
  const s = text.replace(/\n/g, ' ');
  const out: string[] = [];
  let openQuote = true;
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
    } else if (s.startsWith('...', i)) {
      out.push('...');
      i += 3;
    } else if (s.startsWith('--', i)) {
      out.push('--');
      i += 2;
    } else if (c in BRACKETS) {
      out.push(BRACKETS[c]);
      i++;
    } else if (c === '"') {
      out.push(openQuote ? '``' : "''");
      openQuote = !openQuote;
      i++;
    } else if (isAlnum(c)) {
      let j = i;
      while (j < s.length) {
        const d = s[j];
        if (isAlnum(d)) j++;
        else if (d === '-' && isAlnum(s[j - 1]) && isAlnum(s[j + 1])) j++;
        else if ((d === '.' || d === ',') && isDigit(s[j - 1]) && isDigit(s[j + 1])) j++;
        else if (d === "'" && isAlpha(s[j + 1])) {
          // A clitic continues the word (split off below); any other apostrophe ends it.
          let k = j + 1;
          while (k < s.length && isAlpha(s[k])) k++;
          const tail = s.slice(j, k).toLowerCase();
          if (CLITICS.includes(tail) || (tail === "'t" && /[nN]/.test(s[j - 1]))) j = k;
          else break;
        } else break;
      }
      out.push(...splitClitics(s.slice(i, j)));
      i = j;
    } else if (c === "'") {
      // A single quote: closing after a word, opening otherwise.
      out.push(isAlnum(s[i - 1]) ? "'" : '`');
      i++;
    } else {
      out.push(c);
      i++;
    }
  }
  return out;
}

/** One caption as pycocoevalcap scores it: lowercased PTB tokens without punctuation, joined by single spaces. */
export function ptbTokenize(text: string): string {
  return ptbTokens(text)
    .map((t) => t.toLowerCase())
    .filter((t) => !DROPPED.has(t))
    .join(' ');
}
