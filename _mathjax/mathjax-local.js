// MathJax 3 for the book's pages (_config.yml: mathjax_path, html_static_path: [_mathjax]).
// Loads the copy that `make mathjax` puts in _mathjax/mathjax3/ (it becomes _static/mathjax3/ in
// the built book), so that math renders without a network (file:// pages, offline classrooms);
// falls back to the CDN when that copy is missing.
(function () {
  var here = document.currentScript.src.replace(/[^\/]*$/, "");
  function load(src, onerror) {
    var s = document.createElement("script");
    s.src = src;
    s.async = true;
    if (onerror) s.onerror = onerror;
    document.head.appendChild(s);
  }
  load(here + "mathjax3/tex-mml-chtml.js", function () {
    load("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js");
  });
})();
