// Fails when a function in src/, jobs/ or workers/ has more than MAX_LINES lines of code (style:
// small functions). Blank and comment-only lines do not count, nor does a data table (an object or
// array literal a function returns or names); a nested function counts for itself, not for the one
// around it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

const MAX_LINES = 60;
const base = resolve(process.argv[2] ?? '.');
const files = ['src', 'jobs', 'workers', 'packages']
  .filter((root) => existsSync(join(base, root)))
  .flatMap(function walk(dir: string): string[] {
    const path = join(base, dir);
    return readdirSync(path).flatMap((name) => {
      const child = join(dir, name);
      return statSync(join(base, child)).isDirectory() ? walk(child) : child.endsWith('.ts') ? [child] : [];
    });
  });

const isFunction = (n: ts.Node): n is ts.FunctionLikeDeclaration =>
  ts.isFunctionDeclaration(n) ||
  ts.isFunctionExpression(n) ||
  ts.isArrowFunction(n) ||
  ts.isMethodDeclaration(n);

const too: string[] = [];
for (const file of files) {
  const source = ts.createSourceFile(
    file,
    readFileSync(join(base, file), 'utf8'),
    ts.ScriptTarget.Latest,
    true,
  );
  const line = (pos: number) => source.getLineAndCharacterOfPosition(pos).line;
  // Lines with no code: blank, or comment only (as ESLint's max-lines-per-function skips them).
  const blank = new Set<number>();
  source.text.split('\n').forEach((text, l) => {
    const t = text.trim();
    if (t === '' || t.startsWith('//') || t.startsWith('/*') || t.startsWith('*')) blank.add(l);
  });
  /**
   * Lines of `fn` that are its own: not those of the functions nested in it (each measured for
   * itself), nor those of a data table it returns or names (an object or array literal directly in
   * its body; the line that opens the table counts).
   */
  const own = (fn: ts.FunctionLikeDeclaration): number => {
    const first = line(fn.getStart(source));
    const last = line(fn.getEnd());
    const others = new Set<number>();
    const mark = (n: ts.Node, from: number) => {
      for (let l = from; l <= line(n.getEnd()); l++) others.add(l);
    };
    const visit = (n: ts.Node) => {
      if (n !== fn && isFunction(n)) mark(n, line(n.getStart(source)));
      else ts.forEachChild(n, visit);
    };
    visit(fn);
    const isTable = (e: ts.Node | undefined): e is ts.Expression =>
      e !== undefined && (ts.isObjectLiteralExpression(e) || ts.isArrayLiteralExpression(e));
    const body = fn.body && ts.isBlock(fn.body) ? fn.body.statements : [];
    for (const st of body) {
      const tables = ts.isReturnStatement(st)
        ? [st.expression]
        : ts.isVariableStatement(st)
          ? st.declarationList.declarations.map((d) => d.initializer)
          : [];
      for (const t of tables) if (isTable(t)) mark(t, line(t.getStart(source)) + 1);
    }
    if (fn.body && isTable(fn.body)) mark(fn.body, line(fn.body.getStart(source)) + 1);
    let n = 0;
    for (let l = first; l <= last; l++) if (!others.has(l) && !blank.has(l)) n++;
    return n;
  };
  const visit = (n: ts.Node) => {
    if (isFunction(n) && n.body && own(n) > MAX_LINES) {
      const name =
        n.name?.getText(source) ??
        (ts.isVariableDeclaration(n.parent) ? n.parent.name.getText(source) : '(anonymous)');
      too.push(
        `${relative(process.cwd(), join(base, file))}:${line(n.getStart(source)) + 1} ${name}: ${own(n)} lines`,
      );
    }
    ts.forEachChild(n, visit);
  };
  visit(source);
}
for (const t of too) console.error(`function over ${MAX_LINES} lines: ${t}`);
if (too.length > 0) process.exit(1);
console.log(`no function over ${MAX_LINES} lines in ${files.length} files`);
