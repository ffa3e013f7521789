// The routing-rule regex dialect is Python's re (CPython 3.11, the legacy app's image): a table of patterns with the
// verdict of re.compile stated here, checked against our checker, and, where python3 is installed, against the real
// re.compile, together with a few thousand generated patterns.
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { regexProblem } from '../../src/store/key-schemas.js'
import { checkPythonRegex } from '../../src/store/python-regex.js'

// [pattern, does Python 3.11's re.compile accept it, what JavaScript's RegExp says, for the table in docs/keys.md]
const TABLE: Array<[string, boolean, string]> = [
  ['invoice', true, 'same'],
  ['^(urgent|asap)\\b', true, 'same'],
  ['(?i)invoice', true, 'JavaScript refuses (?i) (a flag, not a group)'],
  ['(?i:invoice) #\\d+', true, 'JavaScript before ES2025 refuses scoped flags'],
  ['(?x) a b  # comment', true, 'JavaScript has no verbose mode'],
  ['(?P<id>\\d+)-(?P=id)', true, 'JavaScript refuses (?P<…>) and (?P=…)'],
  ['(?<id>\\d+)', false, 'JavaScript accepts: a named group'],
  ['(?<id>\\d+)\\k<id>', false, 'JavaScript accepts: a named back-reference'],
  ['\\p{L}+', false, 'JavaScript accepts with the u flag: a Unicode property'],
  ['\\Aorder\\Z', true, 'JavaScript has no \\A or \\Z (it reads them as A and Z)'],
  ['(?<=INV-)\\d+', true, 'same'],
  ['(?<=INV-\\d+)x', false, 'JavaScript accepts a look-behind of any width'],
  ['(?<!ab|c)x', false, 'JavaScript accepts: alternatives of different widths behind'],
  ['(?<!ab|cd)x', true, 'same'],
  ['(?>atomic)', true, 'JavaScript has no atomic groups'],
  ['a++', true, 'JavaScript has no possessive quantifiers'],
  ['(a)(?(1)b|c)', true, 'JavaScript has no conditionals'],
  ['(?#a comment)x', true, 'JavaScript has no comment groups'],
  ['\\d{,3}', true, 'JavaScript reads {,3} as text'],
  ['a{3,1}', false, 'JavaScript refuses too'],
  ['[z-a]', false, 'JavaScript refuses too'],
  ['[\\d-z]', false, 'JavaScript accepts without the u flag'],
  ['\\q', false, 'JavaScript accepts (an identity escape)'],
  ['\\cA', false, 'JavaScript accepts (a control escape)'],
  ['\\x4', false, 'JavaScript accepts (as x4)'],
  ['\\u00e9t\\U0001F600', true, 'JavaScript has no \\U'],
  ['\\1(a)', false, 'JavaScript accepts a forward reference'],
  ['(a)\\2', false, 'JavaScript accepts (as an octal escape)'],
  ['(a)\\1', true, 'same'],
  ['[]a]', true, 'JavaScript reads [] as an empty class'],
  ['[^]a]', true, 'JavaScript reads [^] as any character'],
  ['*a', false, 'JavaScript refuses too'],
  ['a**', false, 'JavaScript refuses too'],
  ['a{2}{3}', false, 'JavaScript refuses too'],
  ['(?:a{2}){3}', true, 'same'],
  ['a(?i)b', false, 'global flags only at the start'],
  ['(?L)x', false, 'the L flag is for bytes patterns'],
  ['(?au)x', false, 'incompatible flags'],
  ['(unclosed', false, 'JavaScript refuses too'],
  ['closed)', false, 'JavaScript refuses too'],
  ['(?P<1a>x)', false, 'not an identifier'],
  ['(?P<n>a)(?P<n>b)', false, 'JavaScript refuses a duplicate name too'],
  ['\\', false, 'JavaScript refuses too'],
  ['^\\s*re:\\s*(?:fw|tr)\\b', true, 'same'],
]

// [pattern, what Python 3.11's re.compile says: null when it compiles, else its message]
const MESSAGES: Array<[string, string | null]> = [
  ['(?P<', 'missing group name at position 4'],
  ['(?P<>x)', 'missing group name at position 4'],
  ['(?P<a', 'missing >, unterminated name at position 4'],
  ['(?<=(a)\\1)', 'cannot refer to group defined in the same lookbehind subpattern at position 9'],
  ['(?<=(a)(?P=x))', "unknown group name 'x' at position 11"],
  ['(?P<x>a)(?<=(?P=x))', null],
  ['(a(?<=\\1))', 'cannot refer to an open group at position 6'],
  ['\\U00110000', 'bad escape \\U00110000 at position 0'],
  ['[\\777]', 'octal escape value \\777 outside of range 0-0o377 at position 1'],
  ['\\777', 'octal escape value \\777 outside of range 0-0o377 at position 0'],
  ['\\0777', null],
  ['[a-]', null],
  ['a{4294967295}', 'the repetition number is too large'],
  ['(?', 'unexpected end of pattern at position 2'],
  ['(?i', 'missing -, : or ) at position 3'],
  ['(?i;x)', 'missing -, : or ) at position 3'],
  ['(?iQ:x)', 'unknown flag at position 3'],
  ['(?-', 'missing flag at position 3'],
  ['(?-Q:x)', 'unknown flag at position 3'],
  ['(?-;x)', 'missing flag at position 3'],
  ['(?-a:x)', "bad inline flags: cannot turn off flags 'a', 'u' and 'L' at position 4"],
  ['(?-i', 'missing : at position 4'],
  ['(?-iQ)', 'unknown flag at position 4'],
  ['(?-i;', 'missing : at position 4'],
  ['(?i-i:x)', 'bad inline flags: flag turned on and off at position 5'],
  ['(?P', 'unexpected end of pattern at position 3'],
  ['(?Px)', 'unknown extension ?Px at position 1'],
  ['(?#abc', 'missing ), unterminated comment at position 0'],
  ['(?<', 'unexpected end of pattern at position 3'],
  ['(?(x)a)', "unknown group name 'x' at position 3"],
  ['(?P<x>a)(?(x)b|c)', null],
  ['(?(0)a)', 'bad group number at position 3'],
  ['(a)(?(1)b|c|d)', 'conditional backref with more than two branches at position 11'],
  ['(a)(?(5)b)', 'invalid group reference 5 at position 6'],
  ['(?(1)a)', 'invalid group reference 1 at position 3'],
  ['(?(1a)x)', "bad character in group name '1a' at position 3"],
  ['(?a)(?u)', 'ASCII and UNICODE flags are incompatible'],
  ['(?-t:x)', 'bad inline flags: cannot turn off global flag at position 4'],
  ['[a', 'unterminated character set at position 0'],
  ['a{99999999999}', 'the repetition number is too large'],
  ['(?P=)', 'missing group name at position 4'],
  ['(?P=1x)', "bad character in group name '1x' at position 4"],
  ['(?P=x)', "unknown group name 'x' at position 4"],
  ['(?P<x>(?P=x))', 'cannot refer to an open group at position 10'],
  ['(a\\1)', 'cannot refer to an open group at position 2'],
  ['\\18', 'invalid group reference 18 at position 1'],
  ['[\\1]', null],
  ['\\x', 'incomplete escape \\x at position 0'],
  ['(?i)(?x)(?s)a', null],
  ['(?<=a|bc)', 'look-behind requires fixed-width pattern'],
  ['(?x)[ a]#c\n b', null],
  ['(?<=(?<=a))b', null],
  ['(?<=(?:a|b)c)d', null],
  ['(?<=a{2})b', null],
  ['(?<=(a)(?(1)b|c))d', 'cannot refer to group defined in the same lookbehind subpattern at position 12'],
  ['\\$', null],
  ['(?P<n>a)(?P<n>b)', "redefinition of group name 'n' as group 2; was group 1 at position 12"],
  ['(?L)x', "bad inline flags: cannot use 'L' flag with a str pattern at position 3"],
  ['(?au)x', "bad inline flags: flags 'a', 'u' and 'L' are incompatible at position 4"],
  ['a(?i)b', 'global flags not at the start of the expression at position 1'],
]

const python = spawnSync('python3', ['-c', 'print(1)'], { encoding: 'utf8' }).stdout === '1\n'

/** re.compile's verdicts, from the real Python: null when it compiles, else its message. */
function pythonVerdicts(patterns: string[]): Array<string | null> {
  const script = `
import json, re, sys, warnings
warnings.simplefilter('ignore')
out = []
for p in json.load(sys.stdin):
    try:
        re.compile(p); out.append(None)
    except Exception as e:
        out.append(str(e))
print(json.dumps(out))`
  const run = spawnSync('python3', ['-c', script], { input: JSON.stringify(patterns), encoding: 'utf8' })
  return JSON.parse(run.stdout)
}

describe('the Python re dialect', () => {
  it.each(TABLE)('%s: Python %s', (pattern, accepted) => {
    const checked = checkPythonRegex(pattern)
    expect(checked.ok).toBe(accepted)
  })

  it('says what Python says, at the position Python gives', () => {
    expect(checkPythonRegex('(?<id>x)')).toEqual({ ok: false, message: 'unknown extension ?<i at position 1' })
    expect(checkPythonRegex('ab\\q')).toEqual({ ok: false, message: 'bad escape \\q at position 2' })
    expect(checkPythonRegex('a{3,1}')).toEqual({
      ok: false,
      message: 'min repeat greater than max repeat at position 2',
    })
    expect(checkPythonRegex('(?<=a+)b')).toEqual({ ok: false, message: 'look-behind requires fixed-width pattern' })
  })

  it.each(MESSAGES)('%j: %s', (pattern, message) => {
    expect(checkPythonRegex(pattern)).toEqual(
      message === null ? expect.objectContaining({ ok: true }) : { ok: false, message },
    )
  })

  it('refuses the two constructs it cannot check the way Python does, saying so', () => {
    expect(checkPythonRegex('\\N{DIGIT ONE}')).toEqual({
      ok: false,
      message:
        '\\N{…} (a character by its Unicode name) is not accepted here; write the character itself at position 2',
    })
    expect(checkPythonRegex('(?t)a')).toEqual({
      ok: false,
      message: 'the t (TEMPLATE) flag is not accepted here at position 3',
    })
  })

  it('a refusal names the construct, with the Python way where JavaScript habits differ', () => {
    expect(regexProblem('(?<id>\\d+)')).toBe(
      "is not a regex Python's re compiles (unknown extension ?<i at position 1: a named group is (?P<name>…) in Python): the legacy app would drop every rule",
    )
    expect(regexProblem('(?P<id>x)\\k<id>')).toMatch(
      /bad escape \\k at position 9: a named back-reference is \(\?P=name\)/,
    )
    expect(regexProblem(` ${'a'.repeat(200)} `)).toBeUndefined() // 200 once trimmed
    expect(regexProblem('a'.repeat(201))).toMatch(/^must be at most 200 characters once trimmed \(it has 201\)/)
    expect(regexProblem('(a+)+')).toBe('must not nest repetitions (catastrophic backtracking)')
    expect(regexProblem('(?:(?i)a)')).toMatch(/global flags not at the start/)
  })

  it.runIf(python)('the table is what the real re.compile says', () => {
    const verdicts = pythonVerdicts(TABLE.map(([p]) => p))
    expect(verdicts.map((v) => v === null)).toEqual(TABLE.map(([, accepted]) => accepted))
  })

  it.runIf(python)('agrees with the real re.compile on generated patterns, message and all', () => {
    const pieces = [
      'a',
      '.',
      '\\d',
      '\\b',
      '\\Z',
      '^',
      '$',
      '*',
      '+',
      '?',
      '*?',
      '++',
      '{2}',
      '{1,3}',
      '{,2}',
      '{3,1}',
      '{',
      '}',
      '(',
      ')',
      '(?:',
      '(?P<n>',
      '(?P=n)',
      '(?<n>',
      '(?=',
      '(?<=',
      '(?<!',
      '(?i)',
      '(?x)',
      '(?-i:',
      '(?#c)',
      '(?>',
      '(?(1)',
      '|',
      '[',
      ']',
      '[^',
      'a-z',
      'z-a',
      '\\1',
      '\\0',
      '\\12',
      '\\q',
      '\\x4',
      '\\x41',
      '-',
      ' ',
      '#',
      '\\',
      '\\.',
      '[\\b]',
      '[\\d-z]',
      '(?a)',
      '(?au)',
      '(?L)',
      '\\8',
    ]
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 48271) % 2147483647
      return seed % n
    }
    const patterns = Array.from({ length: 4000 }, () =>
      Array.from({ length: 1 + random(6) }, () => pieces[random(pieces.length)]).join(''),
    )
    const verdicts = pythonVerdicts(patterns)
    const differ = patterns.filter((p, i) => {
      const ours = checkPythonRegex(p)
      return ours.ok ? verdicts[i] !== null : verdicts[i] !== ours.message
    })
    // Python raises a ValueError for (?a) with (?u), without a position: the only message that may differ.
    expect(differ.filter((p) => !/\(\?a\).*\(\?u\)|\(\?u\).*\(\?a\)|\(\?au\)/.test(p))).toEqual([])
  })
})
