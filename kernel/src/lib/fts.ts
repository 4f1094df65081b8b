/**
 * Turns what a person types into a safe FTS5 query. Every word must match,
 * as a whole word (`disk full` -> `"disk" AND "full"`); a word ending in `*`
 * matches as a prefix (`dep*` -> `"dep"*`). Quoting means FTS5 operators and
 * punctuation in the input are searched for, never interpreted, so no input
 * can produce a syntax error. A phrase in double quotes stays a phrase.
 *
 * Whole words by default, because a prefix term costs what all its matches
 * cost: FTS5 builds the merged list of every row holding any word with that
 * prefix before it hands out the first (newest) one, so a prefix of a word in
 * most entries takes ~90 ms at a million entries, where the whole word takes
 * about a millisecond (docs/performance.md, issue 11).
 */
export function toFtsQuery(text: string): string | undefined {
  const terms: string[] = [];
  const pattern = /"([^"]*)"|(\S+)/g;
  for (const match of text.matchAll(pattern)) {
    const phrase = match[1];
    const word = match[2];
    if (phrase !== undefined) {
      const cleaned = phrase.trim();
      if (cleaned) terms.push(`"${cleaned.replace(/"/g, '""')}"`);
    } else if (word) {
      const prefix = word.endsWith('*');
      const cleaned = word.replace(/["*]/g, '');
      if (cleaned) terms.push(`"${cleaned}"${prefix ? '*' : ''}`);
    }
  }
  return terms.length > 0 ? terms.join(' AND ') : undefined;
}
