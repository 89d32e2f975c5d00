/* Render math with the vendored KaTeX (docs/javascripts/katex), offline.
 *
 * Only two kinds of element are touched, never the whole <body> (that would turn "$" in code,
 * copy-button text and prose into math):
 *  1. `.arithmatex` elements written by pymdownx.arithmatex (generic mode) on Markdown pages:
 *     inline `\( ... \)`, display `\[ ... \]`, or a bare `\begin{env} ... \end{env}`.
 *  2. Markdown cells (and Markdown/LaTeX outputs) on notebook pages rendered by mkdocs-jupyter,
 *     which keep the raw `$...$`, `$$...$$`, `\(...\)` and `\[...\]`.
 * Errors are shown in place (`.katex-error`, red) instead of breaking the page; the site test
 * fails on them. When done, <html data-math-rendered="N"> records how many formulas were drawn.
 */
(function () {
  "use strict";

  var NOTEBOOK_SELECTOR = [
    ".jupyter-wrapper .jp-MarkdownCell .jp-RenderedMarkdown",
    ".jupyter-wrapper .jp-OutputArea-output.jp-RenderedMarkdown",
    ".jupyter-wrapper .jp-RenderedLatex",
  ].join(", ");

  var NOTEBOOK_DELIMITERS = [
    { left: "$$", right: "$$", display: true },
    { left: "\\[", right: "\\]", display: true },
    { left: "\\(", right: "\\)", display: false },
    { left: "$", right: "$", display: false },
  ];

  function katexOptions(displayMode) {
    return { displayMode: displayMode, throwOnError: false, strict: "ignore", trust: false };
  }

  function renderArithmatex(root) {
    var count = 0;
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      if (el.querySelector(".katex")) return; // already rendered (instant navigation)
      var tex = el.textContent.trim();
      var display = el.tagName !== "SPAN";
      if (tex.startsWith("\\(") && tex.endsWith("\\)")) {
        tex = tex.slice(2, -2);
        display = false;
      } else if (tex.startsWith("\\[") && tex.endsWith("\\]")) {
        tex = tex.slice(2, -2);
        display = true;
      }
      window.katex.render(tex, el, katexOptions(display));
      count += 1;
    });
    return count;
  }

  function renderNotebookMarkdown(root) {
    var count = 0;
    root.querySelectorAll(NOTEBOOK_SELECTOR).forEach(function (el) {
      if (el.dataset.katexDone) return;
      var before = el.querySelectorAll(".katex").length;
      window.renderMathInElement(el, {
        delimiters: NOTEBOOK_DELIMITERS,
        throwOnError: false,
        strict: "ignore",
        ignoredClasses: ["zeroclipboard-container", "jp-InputArea-editor"],
      });
      el.dataset.katexDone = "1";
      count += el.querySelectorAll(".katex").length - before;
    });
    return count;
  }

  function render(root) {
    if (!window.katex || !window.renderMathInElement) {
      console.error("katex-render.js: KaTeX did not load (docs/javascripts/katex)");
      return;
    }
    var n = renderArithmatex(root) + renderNotebookMarkdown(root);
    document.documentElement.dataset.mathRendered = String(n);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    // mkdocs-material: emits on first load and after every instant-navigation page swap.
    window.document$.subscribe(function () {
      render(document);
    });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      render(document);
    });
  } else {
    render(document);
  }
})();
