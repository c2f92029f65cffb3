// Show times in the viewer's time zone; the UTC time stays in the title (hover).
document.querySelectorAll("time[datetime]").forEach((el) => {
  const when = new Date(el.getAttribute("datetime"));
  if (!isNaN(when)) el.textContent = when.toLocaleString();
});
