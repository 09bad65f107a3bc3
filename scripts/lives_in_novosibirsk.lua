-- lives_in_novosibirsk: home city Novosibirsk.
-- 1. Partner signal with city/geo_city = novosibirsk (newest city wins).
-- 2. Else: events from Novosibirsk IP ranges on >= 3 distinct days within
--    30 days. NOTE: the ranges below are illustrative placeholders; in
--    production take them from the GeoIP feed.
-- 3. Else: local searches ("... новосибирск", "нск") on >= 2 distinct days
--    within 30 days.
local NSK_IP = filter {
  within_days = 30,
  ip_in = { "198.51.100.0/24", "203.0.113.0/25" },
}
local NSK_SEARCHES = filter {
  type = "search",
  within_days = 30,
  query_contains = { "новосибирск", "в нск", "novosibirsk", "академгородок" },
}
local NSK_SITES = filter { type = "page_view", within_days = 30, host = { "ngs.ru", "nsk.ru" } }

return segment_script {
  name = "lives_in_novosibirsk",
  version = "1.0.0",
  description = "Home city Novosibirsk from partner geo, IP ranges or local searches",
  segments = { "lives_in_novosibirsk" },
  evaluate = function(user)
    local city = user:attr("city", { type = "partner_signal" })
              or user:attr("geo_city", { type = "partner_signal" })
    if city then
      city = lower(city)
      if city == "novosibirsk" or city == "новосибирск" then return { "lives_in_novosibirsk" } end
      return {}
    end
    if user:distinct("day", NSK_IP) >= 3 then return { "lives_in_novosibirsk" } end
    if user:distinct("day", NSK_SEARCHES) + user:distinct("day", NSK_SITES) >= 2 then
      return { "lives_in_novosibirsk" }
    end
    return {}
  end,
}
