// Lint rules: the recommended sets of ESLint and typescript-eslint, plus the
// few house rules that keep daemons honest (no floating promises, no
// process.exit outside bin/) and the layers apart (no-restricted-imports,
// below; import cycles are checked by scripts/check-import-cycles.ts).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// Parsers are pure (DESIGN.md): src/config and src/protocol take text or
// bytes and return values, so their tests can feed any input without files
// or sockets. The one exception is src/config/read-config-files.ts, the
// "read text" step of the config, which opens the files and checks their
// owner and mode.
const IO_MODULES = ["fs", "node:fs", "fs/promises", "node:fs/promises", "net", "node:net"];
const PURE = {
  paths: IO_MODULES.map((name) => ({
    name,
    message:
      "src/config and src/protocol are pure parsers (DESIGN.md): take text or bytes, leave files and sockets to the caller",
  })),
};

// Which folders of src/ a folder must not import: each line is an edge that
// would run back up a layer (model < storage < protocol, config < jobsdir,
// auth < slave, master < cli). A name two layers share goes down into
// src/model/, which imports nothing.
function above(folder, names, why) {
  return {
    regex: `^(\\.\\./)+(${names.join("|")})(/|\\.js$)`,
    message: `${folder} must not import ${names.join(", ")}: ${why}`,
  };
}
const LAYERS = {
  model: [above("src/model", ["[a-z-]+"], "the shared vocabulary imports nothing")],
  storage: [
    above(
      "src/storage",
      ["protocol", "config", "jobsdir", "auth", "slave", "master", "cli", "admin-client"],
      "storage is below everything that uses it",
    ),
  ],
  protocol: [
    above(
      "src/protocol",
      ["config", "storage", "jobsdir", "auth", "slave", "master", "cli", "admin-client"],
      "the protocol is shared by master, slave and abs; names it shares with them belong in src/model/",
    ),
  ],
  config: [
    above(
      "src/config",
      ["protocol", "storage", "jobsdir", "auth", "slave", "master", "cli", "admin-client"],
      "the config is parsed before anything else starts; names it shares belong in src/model/",
    ),
  ],
  jobsdir: [
    above(
      "src/jobsdir",
      ["protocol", "config", "auth", "slave", "master", "cli", "admin-client"],
      "the jobs store is below the daemons and the protocol",
    ),
  ],
  slave: [
    above(
      "src/slave",
      ["master", "cli", "admin-client"],
      "the slave daemon shares only the layers below it",
    ),
  ],
  master: [
    above(
      "src/master",
      ["slave", "cli", "admin-client"],
      "the master answers abs; what both sides of the admin socket share belongs in src/protocol/",
    ),
  ],
};
function restrictImports(files, { pure, layers }) {
  return {
    files,
    rules: {
      "no-restricted-imports": ["error", { ...(pure ? PURE : {}), patterns: layers }],
    },
  };
}
const layerRules = Object.entries(LAYERS).map(([folder, layers]) =>
  restrictImports([`src/${folder}/**/*.ts`], {
    pure: folder === "config" || folder === "protocol",
    layers,
  }),
);

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".tap/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // A switch over a union names every member (or has a default): a state
      // or message type added later is found at compile time, not in the field.
      "@typescript-eslint/switch-exhaustiveness-check": "error",
    },
  },
  {
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        {
          object: "process",
          property: "exit",
          message: "library code never exits; throw a typed error",
        },
      ],
    },
  },
  ...layerRules,
  // Later entries win: the file reader of src/config keeps the layer rule
  // and may use node:fs, and it alone may use src/storage's trust checks.
  restrictImports(["src/config/read-config-files.ts"], {
    pure: false,
    layers: [
      above(
        "src/config",
        ["protocol", "jobsdir", "auth", "slave", "master", "cli", "admin-client"],
        "the config is parsed before anything else starts; names it shares belong in src/model/",
      ),
    ],
  }),
  {
    // tap's t.test() returns a promise that tap itself tracks.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-floating-promises": "off" },
  },
  { files: ["**/*.js"], extends: [tseslint.configs.disableTypeChecked] },
  {
    // The checks `npm run lint` runs are plain Node scripts.
    files: ["scripts/**/*.js"],
    languageOptions: { globals: { console: "readonly", process: "readonly" } },
  },
);
