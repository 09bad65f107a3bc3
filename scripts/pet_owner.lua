-- pet_owner: buys pet supplies; says which pet when the purchases tell.
-- Emits pet_owner, plus cat_owner / dog_owner, from purchases (attribute
-- category = pet_food / pet_supplies, attribute pet = cat / dog) within 120
-- days, or pet-shop searches naming the pet.
local PURCHASES = filter {
  type = "purchase",
  within_days = 120,
  attr = { category = { "pet_food", "pet_supplies" } },
}
local CAT_SEARCH = filter {
  type = "search", within_days = 120, query_contains = { "корм для кошек", "наполнитель", "cat litter" },
}
local DOG_SEARCH = filter {
  type = "search", within_days = 120, query_contains = { "корм для собак", "поводок", "dog food" },
}

return segment_script {
  name = "pet_owner",
  version = "1.0.0",
  description = "Pet supply buyers, with the kind of pet",
  segments = { "pet_owner", "cat_owner", "dog_owner" },
  evaluate = function(user)
    local out = {}
    local pets = user:attr_values("pet", PURCHASES)
    local bought = user:count(PURCHASES)
    local cat = (pets.cat or 0) > 0 or user:count(CAT_SEARCH) >= 2
    local dog = (pets.dog or 0) > 0 or user:count(DOG_SEARCH) >= 2
    if bought > 0 or cat or dog then out[#out + 1] = "pet_owner" end
    if cat then out[#out + 1] = "cat_owner" end
    if dog then out[#out + 1] = "dog_owner" end
    return out
  end,
}
