/*
 * Loaded between RequireJS and the ipywidgets embed manager (see nb_ipywidgets_js in
 * _config.yml). Two fixes that let the widgets on a static page work with no network,
 * and one for screen readers.
 */
(function () {
  "use strict";

  // 1. Assets. The embed manager finds its fonts relative to the RequireJS module
  //    "@jupyter-widgets/html-manager/dist/...", which RequireJS would place next to the
  //    page (chapters/@jupyter-widgets/...). Map that module path to the vendored copy,
  //    found from this script's own URL, so it resolves at every page depth.
  //    The embed manager also reads window.__jupyter_widgets_assets_path__ as its webpack
  //    public path, before it looks at the module's URL: set it too, so the fonts never
  //    depend on how RequireJS named the module (without it a page now and then asked for
  //    chapters/@jupyter-widgets/*.woff2 and got 404s).
  var here = document.currentScript && document.currentScript.src;
  if (here) {
    var staticRoot = here.replace(/\/js\/[^\/]*$/, "");
    window.__jupyter_widgets_assets_path__ = staticRoot + "/vendor/html-manager/";
    if (window.require && window.require.config) {
      window.require.config({
        paths: { "@jupyter-widgets/html-manager/dist": staticRoot + "/vendor/html-manager" }
      });
    }
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

  // 3. Alt text for the frames of static sliders. An ipywidgets Image has no alt text, so
  //    a screen reader met an unnamed picture. Name each frame after the controls of its
  //    output area ("Figure for beta2 = 0.999"), read when the frame is shown, which is
  //    when the slider has just moved to it.
  function controlsText(area) {
    var parts = [];
    var sliders = area.querySelectorAll(".widget-slider, .widget-hslider, .widget-vslider");
    for (var i = 0; i < sliders.length; i++) {
      var label = sliders[i].querySelector(".widget-label");
      var readout = sliders[i].querySelector(".widget-readout");
      var name = label ? label.textContent.trim() : "";
      var value = readout ? (readout.value || readout.textContent || "").trim() : "";
      if (name || value) parts.push(name && value ? name + " = " + value : name || value);
    }
    return parts.join(", ");
  }
  function nameFrames() {
    var images = document.querySelectorAll(".widget-subarea img");
    for (var i = 0; i < images.length; i++) {
      var img = images[i];
      var area = img.closest(".widget-subarea");
      var controls = area ? controlsText(area) : "";
      var alt = controls ? "Figure for " + controls : "Figure (precomputed frame)";
      if (img.getAttribute("alt") !== alt && img.checkVisibility && img.checkVisibility()) {
        img.setAttribute("alt", alt);
      } else if (!img.hasAttribute("alt")) {
        img.setAttribute("alt", alt);
      }
    }
  }
  function watchFrames() {
    var pending = false;
    new MutationObserver(function () {
      if (pending) return;
      pending = true;
      setTimeout(function () { pending = false; nameFrames(); }, 0);
    }).observe(document.body, { childList: true, subtree: true });
    nameFrames();
  }
  if (document.body) watchFrames();
  else document.addEventListener("DOMContentLoaded", watchFrames);
})();
