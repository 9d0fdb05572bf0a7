#!/usr/bin/env bun
// Declaration files for the package's entry points, so that a user's TypeScript reads
// declarations and never these sources: the user's compiler options do not apply to our code,
// skipLibCheck covers it, and neither @types/bun nor @types/node is needed. `prepack` runs this,
// so `npm pack` and `npm publish` ship dist/.
// usage: bun scripts/build-types.ts [outDir]   (default: dist)
//
// Entry points are package.json `exports`, each { "types": "./dist/<name>.d.ts", "default":
// "./src/<name>.ts" } (Bun runs the sources; the `types` condition points TypeScript here). Their
// sources are compiled under the strictest flags; declarations are emitted without what is
// marked @internal, and then:
// - a class whose constructor is @internal declares `private constructor()`: users cannot
//   construct it, as at run time;
// - an import of an optional peer dependency (peerDependenciesMeta) is preceded by
//   `// @ts-ignore`: without that package installed its types are `any` rather than an error;
// - only the declaration files an entry point reaches are kept, and none of them may name Bun's
//   or Node's modules or globals.
// Modules whose classes are disposable start with `/// <reference lib="esnext.disposable"
// preserve="true" />`, which their declarations keep: a project whose lib lacks it (ES2022)
// still compiles them without @types/bun.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

const root = join(import.meta.dir, "..");
const src = join(root, "src");

interface Manifest {
  types?: string;
  exports: Record<string, { types?: string; default?: string } | string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

function fail(message: string): never {
  console.error(`build-types: ${message}`);
  process.exit(1);
}

/** The entry points' source files (absolute), checked against the shape every export must have. */
export function entryPoints(manifest: Manifest): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(manifest.exports)) {
    const source = typeof value === "object" ? value.default : undefined;
    const types = typeof value === "object" ? value.types : undefined;
    const name = source?.match(/^\.\/src\/([\w-]+)\.ts$/)?.[1];
    if (!name || types !== `./dist/${name}.d.ts`) {
      fail(`exports[${JSON.stringify(key)}] must be { "types": "./dist/<name>.d.ts", "default": "./src/<name>.ts" }, got ${JSON.stringify(value)}`);
    }
    out.push(join(src, `${name}.ts`));
  }
  const main = manifest.exports["."];
  if (typeof main !== "object" || manifest.types !== main.types?.slice(2)) fail(`"types" must be exports["."].types without its "./"`);
  return out;
}

/** The strictest flags, on top of tsconfig.json's, and declaration output to `outDir`. */
function compilerOptions(outDir: string): ts.CompilerOptions {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => fail(ts.flattenDiagnosticMessageText(d.messageText, "\n")),
  });
  if (!config) fail("cannot read tsconfig.json");
  return {
    ...config.options,
    strict: true,
    exactOptionalPropertyTypes: true,
    noPropertyAccessFromIndexSignature: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
    noImplicitReturns: true,
    noFallthroughCasesInSwitch: true,
    noUnusedLocals: true,
    noUnusedParameters: true,
    allowUnreachableCode: false,
    allowUnusedLabels: false,
    verbatimModuleSyntax: true,
    noEmit: false,
    declaration: true,
    emitDeclarationOnly: true,
    declarationMap: true,
    stripInternal: true,
    rootDir: src,
    outDir,
  };
}

const isInternal = (node: ts.Node) => ts.getJSDocTags(node).some((t) => t.tagName.text === "internal");

/** The post-emit changes described above, as a declaration transformer. */
function declarationTransformer(optionalPeers: string[]): ts.TransformerFactory<ts.SourceFile | ts.Bundle> {
  const isOptionalPeer = (spec: string) => optionalPeers.some((p) => spec === p || spec.startsWith(`${p}/`));
  return (context) => (file) => {
    if (!ts.isSourceFile(file)) return file;
    const f = context.factory;
    const visit = (node: ts.Node): ts.Node => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && isOptionalPeer(node.moduleSpecifier.text)) {
        const spec = node.moduleSpecifier.text;
        return ts.addSyntheticLeadingComment(node, ts.SyntaxKind.SingleLineCommentTrivia, ` @ts-ignore ${spec} is an optional peer dependency: without it these types are any`, true);
      }
      if (ts.isClassDeclaration(node) && !node.members.some(ts.isConstructorDeclaration)) {
        const original = ts.getOriginalNode(node);
        if (ts.isClassDeclaration(original) && original.members.some((m) => ts.isConstructorDeclaration(m) && isInternal(m))) {
          const ctor = f.createConstructorDeclaration([f.createModifier(ts.SyntaxKind.PrivateKeyword)], [], undefined);
          // After the fields, where a constructor is declared.
          let at = node.members.findIndex((m) => !ts.isPropertyDeclaration(m));
          if (at < 0) at = node.members.length;
          const members = [...node.members.slice(0, at), ctor, ...node.members.slice(at)];
          return f.updateClassDeclaration(node, node.modifiers, node.name, node.typeParameters, node.heritageClauses, members);
        }
      }
      return node;
    };
    return ts.visitEachChild(file, visit, context);
  };
}

/** What a declaration file must not contain, and why. */
function problems(text: string, optionalPeers: string[]): string[] {
  const out: string[] = [];
  if (/\bfrom\s+["']bun(:\w+)?["']|\bimport\(\s*["']bun(:\w+)?["']\s*\)|\bBun\.|types=["']bun["']/.test(text)) out.push("Bun's types (needs @types/bun)");
  if (/\bfrom\s+["']node:|\bimport\(\s*["']node:|\bNodeJS\.|types=["']node["']/.test(text)) out.push("Node's types (needs @types/node)");
  // Node's Buffer as a type, outside comments.
  if (/(?<![\w.])Buffer\b/.test(text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ""))) out.push("Node's Buffer type (needs @types/node)");
  for (const p of optionalPeers) {
    if (text.includes(`import("${p}`)) out.push(`an inline import("${p}") (import its types at the top of the source module, so that the import can be ignored)`);
  }
  return out;
}

/** Relative modules a declaration file imports or re-exports, as declaration file paths. */
function imports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\(\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, ".d.ts")));
  }
  return out;
}

/** Builds the declarations into `outDir` (emptied first); returns the files written, relative to it. */
export function buildTypes(outDir: string): string[] {
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Manifest;
  const entries = entryPoints(manifest);
  const optionalPeers = Object.entries(manifest.peerDependenciesMeta ?? {}).filter(([, m]) => m.optional).map(([name]) => name);
  const program = ts.createProgram(entries, compilerOptions(outDir));
  const emitted = new Map<string, string>();
  const result = program.emit(undefined, (name, text) => emitted.set(resolve(name), text), undefined, true, {
    afterDeclarations: [declarationTransformer(optionalPeers)],
  });
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length > 0) {
    const host = { getCanonicalFileName: (n: string) => n, getCurrentDirectory: () => root, getNewLine: () => "\n" };
    fail(`the sources do not compile under the strictest flags:\n${ts.formatDiagnostics(diagnostics, host)}`);
  }
  // Only what the entry points reach.
  const keep = new Set<string>();
  const queue = entries.map((e) => join(outDir, relative(src, e).replace(/\.ts$/, ".d.ts")));
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (keep.has(file)) continue;
    const text = emitted.get(file);
    if (text === undefined) fail(`no declarations were emitted for ${relative(root, file)}`);
    const found = problems(text, optionalPeers);
    if (found.length > 0) fail(`${relative(root, file)} has ${found.join(" and ")}:\n${text}`);
    keep.add(file);
    queue.push(...imports(file, text));
  }
  rmSync(outDir, { recursive: true, force: true });
  const written: string[] = [];
  for (const file of keep) {
    for (const name of [file, `${file}.map`]) {
      const text = emitted.get(name);
      if (text === undefined) continue;
      mkdirSync(dirname(name), { recursive: true });
      writeFileSync(name, text);
      written.push(relative(outDir, name));
    }
  }
  return written.sort();
}

if (import.meta.main) {
  const outDir = resolve(root, process.argv[2] ?? "dist");
  const written = buildTypes(outDir);
  console.log(`build-types: ${written.length} files in ${relative(root, outDir) || outDir}`);
}
