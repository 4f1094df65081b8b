/**
 * Turns what a person types into a safe FTS5 query: every word becomes a
 * quoted prefix term and all must match (`disk full` -> `"disk"* AND "full"*`).
 * Quoting means FTS5 operators and punctuation in the input are searched for,
 * never interpreted, so no input can produce a syntax error. A phrase in
 * double quotes stays a phrase.
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
      const cleaned = word.replace(/"/g, '');
      if (cleaned) terms.push(`"${cleaned.replace(/"/g, '""')}"*`);
    }
  }
  return terms.length > 0 ? terms.join(' AND ') : undefined;
}
