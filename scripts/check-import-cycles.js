// Fails (exit 1) on any import cycle among the project's own files, with
// type-only imports counted: a cycle of types still ties the files'
// designs together, and one value import later makes it a load-order bug.
// Edges are the `import ... from`, `export ... from`, `import x =
// require()`, `import("...")` and `import("...").Type` of every file
// tsconfig.json includes, resolved by TypeScript's own module resolution.
// A lazy import() counts: loading late does not make a module that imports
// its own loader any less of a knot. Run by `npm run lint`.

import path from "node:path";
import ts from "typescript";

const root = path.resolve(import.meta.dirname, "..");

// Edges allowed for now, "from -> to" relative to the repository root, each
// with the reason and what removes it. An allowed edge that no longer exists
// fails the check too, so the exemption is deleted with the edge.
const ALLOWED = new Map([]);

function projectFiles() {
  const configPath = path.join(root, "tsconfig.json");
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root);
  return { files: parsed.fileNames.map((f) => path.resolve(f)), options: parsed.options };
}

function moduleSpecifiers(file) {
  const source = ts.createSourceFile(file, ts.sys.readFile(file) ?? "", ts.ScriptTarget.Latest);
  const specs = [];
  const literal = (node) => {
    if (node !== undefined && ts.isStringLiteralLike(node)) specs.push(node.text);
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      literal(node.moduleSpecifier);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference)
    ) {
      literal(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      literal(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      literal(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specs;
}

function importGraph() {
  const { files, options } = projectFiles();
  const inProject = new Set(files);
  const graph = new Map();
  for (const file of files) {
    const targets = new Set();
    for (const spec of moduleSpecifiers(file)) {
      const resolved = ts.resolveModuleName(spec, file, options, ts.sys).resolvedModule;
      if (resolved === undefined || resolved.isExternalLibraryImport) continue;
      const target = path.resolve(resolved.resolvedFileName);
      if (inProject.has(target)) targets.add(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

// Tarjan's strongly connected components: every cycle lies inside one
// component of more than one file (or a file importing itself).
function components(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const found = [];
  let next = 0;
  function visit(v) {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v).has(v)) found.push(component);
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

// One shortest cycle through `start` inside its component, for the message.
function cycleThrough(graph, component, start) {
  const members = new Set(component);
  const previous = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v)) {
      if (w === start) {
        const cycle = [start];
        for (let u = v; u !== start; u = previous.get(u)) cycle.splice(1, 0, u);
        return [...cycle, start];
      }
      if (members.has(w) && !previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

const rel = (f) => path.relative(root, f);
const graph = importGraph();
let failed = false;

for (const [edge, why] of ALLOWED) {
  const [from, to] = edge.split(" -> ").map((f) => path.join(root, f));
  if (graph.get(from)?.has(to)) {
    graph.get(from).delete(to);
    console.log(`import cycles: allowed for now: ${edge} (${why})`);
  } else {
    console.error(
      `import cycles: the allowed edge ${edge} is gone: delete it from ALLOWED in scripts/check-import-cycles.js`,
    );
    failed = true;
  }
}

for (const component of components(graph)) {
  const start = [...component].sort()[0];
  const cycle = cycleThrough(graph, component, start).map(rel).join(" -> ");
  console.error(`import cycle (${component.length} files): ${cycle}`);
  failed = true;
}

if (failed) process.exit(1);
