"""CookingWorld: a task-agnostic cooking text world (rooms, food, knife, stove / oven / barbecue)."""
