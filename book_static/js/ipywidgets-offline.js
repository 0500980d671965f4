/*
 * Loaded between RequireJS and the ipywidgets embed manager (see nb_ipywidgets_js in
 * _config.yml). Two fixes that let the widgets on a static page work with no network.
 */
(function () {
  "use strict";

  // 1. Assets. The embed manager finds its fonts relative to the RequireJS module
  //    "@jupyter-widgets/html-manager/dist/...", which RequireJS would place next to the
  //    page (chapters/@jupyter-widgets/...). Map that module path to the vendored copy,
  //    found from this script's own URL, so it resolves at every page depth.
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var staticRoot = here.replace(/\/js\/[^\/]*$/, "");
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": staticRoot + "/vendor/html-manager" }
    });
  }

  // 2. Math in widget labels. ipywidgets 8 typesets descriptions (and Label, HTMLMath)
  //    with the MathJax 2 API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the
  //    book loads MathJax 3, which has no Hub, so every labelled widget threw "reading
  //    'Queue'". Give whichever object window.MathJax holds (the configuration first,
  //    MathJax 3 once it starts) a Hub whose Queue typesets that element with MathJax 3.
  //    Widget labels write math as $...$ (as in Jupyter), but the book's MathJax reads
  //    only \(...\) and \[...\] (a bare $ in prose must stay a dollar), so the text
  //    nodes of the element are rewritten to those delimiters first.
  function toMathJaxDelimiters(element) {
    if (!element || !element.ownerDocument) return;
    var walker = element.ownerDocument.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    var node;
    while ((node = walker.nextNode())) {
      var text = node.nodeValue;
      if (text.indexOf("$") < 0) continue;
      node.nodeValue = text
        .replace(/\$\$([^$]+)\$\$/g, "\\[$1\\]")
        .replace(/\$([^$]+)\$/g, "\\($1\\)");
    }
  }
  function typesetWhenReady(element, triesLeft) {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise && mj.typesetPromise) {
      mj.startup.promise
        .then(function () {
          toMathJaxDelimiters(element);
          return mj.typesetPromise(element ? [element] : undefined);
        })
        .catch(function (err) { console.warn("MathJax typeset of a widget label failed:", err); });
    } else if (triesLeft > 0) {
      setTimeout(function () { typesetWhenReady(element, triesLeft - 1); }, 100);
    }
  }
  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") typesetWhenReady(job[2], 100);
      }
    }
  };
  function withHub(value) {
    if (value && typeof value === "object" && !value.Hub) {
      try { value.Hub = hub; } catch (e) { /* frozen: leave it */ }
    }
    return value;
  }
  var current = withHub(window.MathJax);
  try {
    Object.defineProperty(window, "MathJax", {
      configurable: true,
      enumerable: true,
      get: function () { return current; },
      set: function (value) { current = withHub(value); }
    });
  } catch (e) { /* window.MathJax not redefinable: nothing more we can do */ }
})();
