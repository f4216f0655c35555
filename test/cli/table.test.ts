import t from "tap";
import { renderFields, renderTable } from "../../src/cli/table.js";

t.test("tables: padded columns, numbers to the right, no trailing blanks", (t) => {
  const text = renderTable(
    [{ title: "ID", align: "right" }, { title: "NAME" }, { title: "INFO" }],
    [
      ["7", "home", "waiting for green-acres"],
      ["1234", "database-nightly", ""],
    ],
  );
  t.equal(
    text,
    [
      "  ID  NAME              INFO",
      "   7  home              waiting for green-acres",
      "1234  database-nightly",
      "",
    ].join("\n"),
  );
  t.end();
});

t.test("tables: no rows, missing cells, control characters", (t) => {
  t.equal(renderTable([{ title: "A" }, { title: "B" }], []), "A  B\n");
  t.equal(renderTable([{ title: "A" }, { title: "B" }], [["x"]]), "A  B\nx\n");
  t.equal(
    renderTable([{ title: "PATH" }, { title: "N" }], [["a\nb", "1"]]),
    "PATH  N\na\\nb  1\n",
    "a newline in a cell stays on its row",
  );
  t.end();
});

t.test("fields: keys padded, values printable", (t) => {
  t.equal(
    renderFields([
      ["job", "12"],
      ["definition", "home"],
      ["result", "bad\x1b[0m"],
      ["empty", ""],
    ]),
    "job:        12\ndefinition: home\nresult:     bad\\x1b[0m\nempty:\n",
  );
  t.equal(renderFields([]), "");
  t.end();
});
