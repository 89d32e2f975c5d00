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
 *
 * Numbered display equations (\tag{1.1}): KaTeX draws the number absolutely positioned at the
 * right edge of the formula's box, where it lands on top of a formula that is wider than the
 * column. layoutNumbers() moves the number out, beside the box:
 *   <div class="eq-row"><span class="katex-display">formula</span><span class="eq-number">(1.1)</span></div>
 * so the formula scrolls in its own box (stylesheets/extra.css draws the scroll cue) while its
 * number stays next to it. Boxes whose formula does not fit get the class `eq-scrolls`.
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

  function layoutNumbers(root) {
    root.querySelectorAll(".katex-display").forEach(function (display) {
      if (display.parentElement.classList.contains("eq-row")) return;
      var tag = display.querySelector(".katex-html > .katex-tag");
      if (!tag) return;
      var row = document.createElement("div");
      row.className = "eq-row";
      var number = document.createElement("span");
      number.className = "katex eq-number"; // .katex: the number keeps KaTeX's font
      display.parentNode.insertBefore(row, display);
      row.appendChild(display);
      number.appendChild(tag);
      row.appendChild(number);
    });
  }

  function markOverflow() {
    document.querySelectorAll(".md-typeset .katex-display").forEach(function (display) {
      display.classList.toggle("eq-scrolls", display.scrollWidth > display.clientWidth + 1);
    });
    // An inline formula cannot break at commas: one wider than its paragraph (a phone) gets
    // its own small scroll box instead of widening the page.
    document.querySelectorAll(".md-typeset span.arithmatex").forEach(function (span) {
      var block = span.parentElement;
      while (block && getComputedStyle(block).display.indexOf("inline") === 0) {
        block = block.parentElement;
      }
      span.classList.remove("katex-inline-wide");
      if (block && span.getBoundingClientRect().width > block.clientWidth + 1) {
        span.classList.add("katex-inline-wide");
      }
    });
  }

  function render(root) {
    if (!window.katex || !window.renderMathInElement) {
      console.error("katex-render.js: KaTeX did not load (docs/javascripts/katex)");
      return;
    }
    var n = renderArithmatex(root) + renderNotebookMarkdown(root);
    layoutNumbers(root);
    markOverflow();
    document.documentElement.dataset.mathRendered = String(n);
  }

  window.addEventListener("resize", markOverflow);

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
