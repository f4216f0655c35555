import { decode } from "ini";
import t from "tap";
import {
  type IniDocument,
  MAX_LINE_LENGTH,
  MAX_SYNTAX_ERRORS,
  tokenizeIni,
} from "../../src/config/ini-tokenizer.js";

/** Sections as plain objects, for comparison with ini.decode. */
function asObject(doc: IniDocument): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const s of doc.sections) {
    if (s.header === "" && s.entries.length === 0) continue;
    const into = (out[s.header] ??= {});
    for (const e of s.entries) into[e.key] = e.value;
  }
  return out;
}

function messages(doc: IniDocument): string[] {
  return doc.issues.map((i) => i.message);
}

t.test("reads well-formed files as the ini package does", (t) => {
  const texts = [
    "[master]\nrealm = EXAMPLE.COM\nlisten=0.0.0.0:7370\n",
    "; comment\n# comment\n[job home]\nslave = green-acres ; inline comment\nschedule = 0 2 * * * # another\n",
    '[job "db"]\ncommand.program = "pg_dump; vacuum" \ncommand.env.X = \'a # b\'\npath = C:\\dir\\x\n',
    "[master]\r\nrealm = R\r\n\r\n[job a]\r\nslave = s\r\n",
    "[job a]\nvalue = a\\;b\\#c\nempty =\nspaces   =   x  y  \n",
    "[master]\nrealm = é日本\n",
  ];
  for (const text of texts) {
    const doc = tokenizeIni("f.conf", text);
    t.same(doc.issues, [], JSON.stringify(text));
    t.same(asObject(doc), { ...decode(text) }, JSON.stringify(text));
  }
  // ini does not see a header after a byte order mark (it reads a key "[master]"); the tokenizer does.
  const bom = "\ufeff[master]\nrealm = R\n";
  t.same({ ...decode(bom) }, { "[master]": true, realm: "R" });
  t.same(asObject(tokenizeIni("f.conf", bom)), { master: { realm: "R" } });
  t.end();
});

t.test("every entry keeps its line, across CRLF, CR, blank lines and a BOM", (t) => {
  const doc = tokenizeIni(
    "f.conf",
    "\ufeff[master]\r\n\r\n\r\nrealm = R\rlisten = x\n\n[job a]\nslave = s",
  );
  t.same(
    doc.sections.map((s) => [s.header, s.line, s.entries.map((e) => [e.key, e.value, e.line])]),
    [
      ["", 1, []],
      [
        "master",
        1,
        [
          ["realm", "R", 4],
          ["listen", "x", 5],
        ],
      ],
      ["job a", 7, [["slave", "s", 8]]],
    ],
  );
  t.end();
});

t.test("quoting", (t) => {
  const doc = tokenizeIni(
    "f.conf",
    [
      "[s]",
      'a = "x \\"y\\" ; z"',
      "b = 'x \\n # y'",
      'c = "  padded  "',
      "d = plain # comment",
      'e = "a" "b"',
    ].join("\n"),
  );
  const values = doc.sections[1]?.entries.map((e) => [e.key, e.value, e.raw]);
  t.same(values, [
    ["a", 'x "y" ; z', '"x \\"y\\" ; z"'],
    ["b", "x \\n # y", "'x \\n # y'"],
    ["c", "  padded  ", '"  padded  "'],
    ["d", "plain", "plain # comment"],
  ]);
  t.same(messages(doc), [
    'f.conf:6: e "\\"a\\" \\"b\\"": not a valid double-quoted string (escape " and \\ with a backslash, or use single quotes)',
  ]);
  t.end();
});

// [text, messages] — one row per kind of syntax mistake.
const SYNTAX: [string, string[]][] = [
  [
    "[master]\nenabled\n",
    ['f.conf:2: line "enabled": expected "key = value", a [section] header or a comment'],
  ],
  [
    "[master]\nrealm: R\n",
    [
      'f.conf:2: line "realm: R": expected "key = value", a [section] header or a comment (this file separates keys from values with "=", not ":")',
    ],
  ],
  ["[master\nrealm = R\n", ['f.conf:1: line "[master": a section header needs a closing "]"']],
  ["[master] x\n", ['f.conf:1: line "[master] x": unexpected text after "]": "x"']],
  ["[master]\n= R\n", ['f.conf:2: line "= R": a key is missing before "="']],
  ["[master]\nrealm = A\nrealm = B\n", ['f.conf:3: realm "B": already set at line 2']],
  [
    "[master]\nrealm = A\u0000\n",
    [
      'f.conf:2: line "realm = A\\u0000": contains the control character U+0000; is this a text config file?',
    ],
  ],
  [
    "[master]\nrealm = \ufffd\n",
    [
      'f.conf:2: line "realm = \ufffd": contains bytes that are not UTF-8 text; is this a text config file?',
    ],
  ],
];

t.test("every kind of syntax mistake has its exact message", (t) => {
  for (const [text, expected] of SYNTAX)
    t.same(messages(tokenizeIni("f.conf", text)), expected, JSON.stringify(text));
  t.end();
});

t.test("a header in error keeps its entries out of any section", (t) => {
  const doc = tokenizeIni("f.conf", "[master\nrealm = R\n[job a]\nslave = s\n");
  t.same(
    doc.sections.map((s) => s.header),
    ["", "job a"],
  );
  t.end();
});

t.test("a comment after a header, leading blanks", (t) => {
  const doc = tokenizeIni("f.conf", "  [master]   ; the master\n   realm = R\n");
  t.same(doc.issues, []);
  t.equal(doc.sections[1]?.header, "master");
  t.equal(doc.sections[1]?.entries[0]?.value, "R");
  t.end();
});

t.test("slave.conf syntax: key: value as well as key = value", (t) => {
  const doc = tokenizeIni(
    "slave.conf",
    "master: green-acres\nname = a\nmaster_ca: /x=y\nm2 = [::1]:7370\nbare\n",
    {
      colon: true,
    },
  );
  t.same(
    doc.sections[0]?.entries.map((e) => [e.key, e.value]),
    [
      ["master", "green-acres"],
      ["name", "a"],
      ["master_ca", "/x=y"],
      ["m2", "[::1]:7370"],
    ],
  );
  t.same(messages(doc), [
    'slave.conf:5: line "bare": expected "key: value" or "key = value", a [section] header or a comment',
  ]);
  t.end();
});

t.test("hostile input", (t) => {
  t.test("empty and blank files", (t) => {
    for (const text of ["", "\n", "\r\n\r\n", "\ufeff", "   \n\t\n"]) {
      const doc = tokenizeIni("f.conf", text);
      t.same(doc.issues, []);
      t.same(doc.sections, [{ header: "", line: 1, entries: [] }]);
    }
    t.end();
  });

  t.test("a 1 MB line is refused, cut short in the message", (t) => {
    const text = `[master]\nrealm = ${"x".repeat(1024 * 1024)}\nlisten = a\n`;
    const doc = tokenizeIni("f.conf", text);
    t.same(messages(doc), [
      `f.conf:2: line "realm = ${"x".repeat(52)}...": longer than ${MAX_LINE_LENGTH} characters`,
    ]);
    t.same(
      doc.sections[1]?.entries.map((e) => e.key),
      ["listen"],
      "the next line is read",
    );
    t.end();
  });

  t.test("binary garbage stops after a bounded number of errors", (t) => {
    let seed = 7;
    const bytes = Buffer.alloc(64 * 1024);
    for (let i = 0; i < bytes.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    const doc = tokenizeIni("garbage.conf", bytes.toString("utf8"));
    t.ok(doc.issues.length <= MAX_SYNTAX_ERRORS + 1, `${doc.issues.length} issues`);
    const last = doc.issues[doc.issues.length - 1];
    t.match(
      last?.message,
      /^garbage\.conf:\d+: file "garbage\.conf": 20 lines could not be read; stopped here \(is this a config file\?\)$/,
    );
    for (const i of doc.issues)
      // eslint-disable-next-line no-control-regex
      t.notMatch(i.message, /[\u0000-\u0008\u000b-\u001f]/, "messages are escaped");
    t.end();
  });

  t.test("a file cut in the middle of a line reads what is there", (t) => {
    const full = "[master]\nrealm = EXAMPLE.COM\n";
    for (let n = 0; n <= full.length; n++) {
      const doc = tokenizeIni("f.conf", full.slice(0, n));
      for (const i of doc.issues) t.match(i.message, /^f\.conf:\d+: /);
    }
    t.end();
  });

  t.test("__proto__ and other odd keys are plain keys", (t) => {
    const doc = tokenizeIni("f.conf", "[__proto__]\n__proto__ = x\nconstructor = y\n");
    t.same(doc.issues, []);
    t.same(
      doc.sections[1]?.entries.map((e) => e.key),
      ["__proto__", "constructor"],
    );
    t.equal(({} as Record<string, unknown>).x, undefined, "no prototype pollution");
    t.end();
  });
  t.end();
});
