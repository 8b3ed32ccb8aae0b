// VQA accuracy as the official VQAv2 evaluation (vqaEval.py of the VQA API) computes it:
// - the prediction: newlines and tabs to spaces, trimmed, then processPunctuation and processDigitArticle;
// - the human answers: processPunctuation only, and only when they are not all the same (the VQAv2 annotations were
//   normalised when collected; `references: 'normalise'` applies the full normalisation to raw answers instead, as
//   the built-in shapes data and hand-made files need: "two" would otherwise never match a predicted "two" → "2");
// - accuracy = the mean over the n leave-one-out subsets of min(#matching answers in the subset / 3, 1).
// processPunctuation: each of ; : / ' [ ] " ( ) = + \ _ > < @ ` , ? is removed where the *original* text has it next
// to a space or has a digit,digit comma anywhere, else replaced by a space; then periods not followed by a digit
// are removed (at most 32: the reference passes re.UNICODE where Pattern.sub takes its count).
// processDigitArticle: lowercase, split, number words zero…ten and 'none' to digits, articles a/an/the dropped,
// contraction spellings without apostrophes ("dont") mapped to the reference's forms ("don’t").

import { MetricError } from './ngrams.js';

const PUNCT = [';', ':', '/', "'", '[', ']', '"', '(', ')', '=', '+', '\\', '_', '>', '<', '@', '`', ',', '?'];
const NUMBERS: Record<string, string> = {
  none: '0', zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
};
const ARTICLES = new Set(['a', 'an', 'the']);
// The reference's table, verbatim in content (its mix of ' and ’ included).
const CONTRACTIONS: Record<string, string> = {
  aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't", "couldn'tve": 'couldn’t’ve',
  'couldnt’ve': 'couldn’t’ve', didnt: 'didn’t', doesnt: 'doesn’t', dont: 'don’t', hadnt: 'hadn’t', 'hadnt’ve': 'hadn’t’ve',
  "hadn'tve": 'hadn’t’ve', hasnt: 'hasn’t', havent: 'haven’t', hed: 'he’d', 'hed’ve': 'he’d’ve', 'he’dve': 'he’d’ve',
  hes: 'he’s', howd: 'how’d', howll: 'how’ll', hows: 'how’s', 'Id’ve': 'I’d’ve', 'I’dve': 'I’d’ve', Im: 'I’m', Ive: 'I’ve',
  isnt: 'isn’t', itd: 'it’d', 'itd’ve': 'it’d’ve', 'it’dve': 'it’d’ve', itll: 'it’ll', 'let’s': 'let’s', maam: 'ma’am',
  mightnt: 'mightn’t', 'mightnt’ve': 'mightn’t’ve', 'mightn’tve': 'mightn’t’ve', mightve: 'might’ve', mustnt: 'mustn’t',
  mustve: 'must’ve', neednt: 'needn’t', notve: 'not’ve', oclock: 'o’clock', oughtnt: 'oughtn’t', 'ow’s’at': '’ow’s’at',
  '’ows’at': '’ow’s’at', '’ow’sat': '’ow’s’at', shant: 'shan’t', 'shed’ve': 'she’d’ve', 'she’dve': 'she’d’ve',
  'she’s': 'she’s', shouldve: 'should’ve', shouldnt: 'shouldn’t', 'shouldnt’ve': 'shouldn’t’ve',
  'shouldn’tve': 'shouldn’t’ve', 'somebody’d': 'somebodyd', 'somebodyd’ve': 'somebody’d’ve',
  'somebody’dve': 'somebody’d’ve', somebodyll: 'somebody’ll', somebodys: 'somebody’s', someoned: 'someone’d',
  'someoned’ve': 'someone’d’ve', 'someone’dve': 'someone’d’ve', someonell: 'someone’ll', someones: 'someone’s',
  somethingd: 'something’d', 'somethingd’ve': 'something’d’ve', 'something’dve': 'something’d’ve',
  somethingll: 'something’ll', thats: 'that’s', thered: 'there’d', 'thered’ve': 'there’d’ve', 'there’dve': 'there’d’ve',
  therere: 'there’re', theres: 'there’s', theyd: 'they’d', 'theyd’ve': 'they’d’ve', 'they’dve': 'they’d’ve',
  theyll: 'they’ll', theyre: 'they’re', theyve: 'they’ve', twas: '’twas', wasnt: 'wasn’t', 'wed’ve': 'we’d’ve',
  'we’dve': 'we’d’ve', weve: "we've", werent: 'weren’t', whatll: 'what’ll', whatre: 'what’re', whats: 'what’s',
  whatve: 'what’ve', whens: 'when’s', whered: 'where’d', wheres: "where's", whereve: 'where’ve', whod: 'who’d',
  'whod’ve': 'who’d’ve', 'who’dve': 'who’d’ve', wholl: 'who’ll', whos: 'who’s', whove: "who've", whyll: 'why’ll',
  whyre: 'why’re', whys: 'why’s', wont: 'won’t', wouldve: 'would’ve', wouldnt: 'wouldn’t', 'wouldnt’ve': 'wouldn’t’ve',
  'wouldn’tve': 'wouldn’t’ve', yall: 'y’all', 'yall’ll': 'y’all’ll', 'y’allll': 'y’all’ll', 'yall’d’ve': 'y’all’d’ve',
  'y’alld’ve': 'y’all’d’ve', 'y’all’dve': 'y’all’d’ve', youd: 'you’d', 'youd’ve': 'you’d’ve', 'you’dve': 'you’d’ve',
  youll: 'you’ll', youre: 'you’re', youve: 'you’ve',
};
/** Python's \d is Unicode-aware, like \p{Nd}. */
const DIGIT_COMMA_DIGIT = /\p{Nd},\p{Nd}/u;
const isDigit = (c: string | undefined) => c !== undefined && /^\p{Nd}$/u.test(c);

export function vqaPunctuation(text: string): string {
  let out = text;
  const commaNumber = DIGIT_COMMA_DIGIT.test(text);
  for (const p of PUNCT) {
    const remove = text.includes(`${p} `) || text.includes(` ${p}`) || commaNumber;
    out = out.split(p).join(remove ? '' : ' ');
  }
  let result = '';
  let removed = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === '.' && removed < 32 && !isDigit(out[i + 1])) {
      removed++;
      continue;
    }
    result += out[i];
  }
  return result;
}

export function vqaDigitsArticles(text: string): string {
  const kept = text
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .map((w) => (Object.hasOwn(NUMBERS, w) ? NUMBERS[w] : w))
    .filter((w) => !ARTICLES.has(w));
  return kept.map((w) => (Object.hasOwn(CONTRACTIONS, w) ? CONTRACTIONS[w] : w)).join(' ');
}

/** A predicted answer as the evaluation compares it. */
export function normalizeVqaAnswer(answer: string): string {
  return vqaDigitsArticles(vqaPunctuation(answer.replace(/[\n\t]/g, ' ').trim()));
}

export type VqaReferences = 'official' | 'normalise';

/** Accuracy of one prediction against the human answers (10 in VQAv2; any number ≥ 2 works the same way). */
export function vqaAccuracy(prediction: string, answers: readonly string[], references: VqaReferences = 'official'): number {
  if (answers.length < 2) throw new MetricError(`VQA accuracy needs at least 2 human answers per question, got ${answers.length}`);
  const pred = normalizeVqaAnswer(prediction);
  let gts = [...answers];
  if (references === 'normalise') gts = gts.map(normalizeVqaAnswer);
  else if (new Set(gts).size > 1) gts = gts.map(vqaPunctuation);
  let sum = 0;
  for (let i = 0; i < gts.length; i++) {
    let matches = 0;
    for (let j = 0; j < gts.length; j++) if (j !== i && gts[j] === pred) matches++;
    sum += Math.min(1, matches / 3);
  }
  return sum / gts.length;
}

/** Mean accuracy over questions, and per question. */
export function vqaMetrics(
  samples: ReadonlyArray<{ prediction: string; answers: readonly string[] }>,
  references: VqaReferences = 'official',
): { accuracy: number; perSample: number[] } {
  const perSample = samples.map((s) => vqaAccuracy(s.prediction, s.answers, references));
  return { accuracy: perSample.reduce((a, b) => a + b, 0) / Math.max(1, perSample.length), perSample };
}
