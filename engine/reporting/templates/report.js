document.addEventListener("click", function (e) {  /* tap a figure: full size, scroll sideways */
  var t = e.target;
  if (t.tagName === "IMG" && t.closest("figure")) t.closest("figure").classList.toggle("zoom");
});
addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  var root = document.documentElement;
  root.setAttribute("data-images", String(imgs.length));
  root.setAttribute("data-images-ok", ok === imgs.length ? "yes" : "no (" + ok + " of " + imgs.length + ")");
});
