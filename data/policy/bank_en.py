"""English phrase banks for data/policy/generate.py (written by the relay team).

Entries tagged "c:" are casual only, "f:" formal only; untagged ones fit either.
"""

from __future__ import annotations

import random

LANG = "en"
SEP = " "

SLOTS = {
    "item": ["walnut cutting board", "linen apron", "custom name necklace", "ceramic mug set", "leather wallet",
             "phone case", "wool scarf", "kids' rain boots", "LED desk lamp", "yoga mat", "tea sampler",
             "embroidered cushion cover", "silver hoop earrings", "canvas tote", "replacement charger",
             "photo book", "soy candle", "bamboo toothbrush pack", "wedding guest book", "dog harness (M)",
             "watercolor print", "knitting kit", "stainless bottle", "baby blanket", "bike light"],
    "bname": ["Sarah", "Mr. Jones", "Ms. Patel", "Tom", "Aiko", "Daniel", "Mrs. Garcia", "Chris", "Emma", "Liam",
              "Dr. Weber", "Nina", "Mohammed", "Jess", "Mr. Okafor", "Anna"],
    "sname": ["Kate", "Mia", "Ben", "Rosa", "the team", "Oliver", "Priya", "Sam", "Hannah", "Lucas", "Grace"],
    "shop": ["Oak & Thread", "Little Fern Studio", "Northside Outfitters", "Bright Home Goods", "Kiln Works",
             "Maple Leather Co.", "Harbor Prints", "Sunny Side Crafts", "Blue Heron Tea", "Peak Cycle Parts"],
    "carrier": ["UPS", "USPS", "FedEx", "DHL", "Royal Mail", "Canada Post", "the postal service", "the courier"],
    "season": ["autumn", "fall", "winter", "holiday", "spring", "summer", "back-to-school", "Mother's Day"],
    "newthing": ["a matching set of coasters", "three new glaze colours", "a larger size", "a travel version",
                 "a limited run in forest green", "gift boxes", "a children's line", "refill packs"],
    "app": ["WhatsApp", "Telegram", "LINE", "WeChat", "KakaoTalk", "Signal", "Viber", "Messenger", "Insta", "Instagram"],
    "appdesc": ["the app with the green icon", "the blue messaging app", "the usual chat app", "that app with the paper plane",
                "the green chat app", "the app everyone in Japan uses", "WA", "Tele", "the messenger app", "IG"],
    "social": ["Instagram", "Facebook", "TikTok", "Pinterest", "YouTube", "X", "our Facebook group"],
    "mail": ["gmail", "yahoo", "hotmail", "outlook", "icloud", "proton"],
    "city": ["Chicago", "Leeds", "Osaka", "Toronto", "Melbourne", "Denver", "Bristol"],
    "days": ["2", "3", "3-5", "5-7", "7-10", "two", "three", "a few"],
    "size": ["small", "medium", "large", "size 8", "the 30 cm one", "XL"],
    "color": ["navy", "sage green", "natural", "black", "rust", "cream", "charcoal"],
}

MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "October", "November", "December"]


def date(rng: random.Random) -> str:
    d = rng.randrange(1, 29)
    m = rng.randrange(12)
    shape = rng.randrange(5)
    if shape == 0:
        return f"{MONTHS[m]} {d}"
    if shape == 1:
        return f"{d} {MONTHS[m]}"
    if shape == 2:
        return f"{m + 1}/{d}"
    if shape == 3:
        return rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "next week", "tomorrow"])
    return f"2026-{m + 1:02d}-{d:02d}"


def price(rng: random.Random) -> str:
    v = rng.randrange(5, 300)
    return rng.choice([f"${v}.99", f"${v}", f"£{v}.50", f"{v} USD", f"€{v}"])


GREET = [
    "f:Dear {bname},", "f:Hello {bname},", "Hi {bname},", "c:Hey {bname}!", "c:Hi there!", "f:Good morning,",
    "f:Good afternoon {bname},", "Hello,", "c:Hiya,", "f:Dear customer,", "f:Dear valued buyer,", "c:Hey!",
    "Hi,", "f:Greetings,", "c:Morning {bname} :)", "Hello there,", "f:To whom it may concern,", "c:hi",
]

LEAD = [
    "Thank you for your order {order}.", "f:Thank you for shopping with {shop}.", "c:Thanks so much for ordering!",
    "I'm writing about your order {order}.", "f:We are contacting you regarding order {order}.",
    "This is {sname} from {shop}.", "c:It's {sname} here from {shop}.", "Just a quick note about your {item}.",
    "f:I hope this message finds you well.", "c:Hope you're having a good week!", "Following up on your order.",
    "f:Thank you for your purchase of the {item}.", "Thanks for getting back to me.", "Thanks for your message.",
    "c:Quick update for you!", "f:Please allow me to update you on order {order}.",
]

BUYER_LEAD = [
    "I ordered the {item} on {date} (order {order}).", "Hi, it's about order {order}.",
    "I bought a {item} from your shop last week.", "c:so I got my order today", "Quick question about my order.",
    "f:I am writing regarding my recent purchase.", "My order number is {order}.",
]

CLOSE = [
    "f:Kind regards,", "Best regards,", "Thanks!", "c:Cheers,", "f:Sincerely,", "Best,", "c:Thanks again!",
    "f:With best wishes,", "Have a great day!", "c:Take care!", "Warm regards,", "f:Yours faithfully,",
    "Thank you,", "c:ttyl", "f:Thank you for your patience.", "See you next order!", "c:xx", "All the best,",
    "f:Please do not hesitate to reply here with any questions.", "Let me know if you need anything else.",
]

SIGN = ["{sname}", "{sname}\n{shop}", "{shop}", "{sname} @ {shop}", "— {sname}", "{shop} customer care",
        "{sname}, {shop}\nHandmade in {city}", "The {shop} team"]
BUYER_SIGN = ["{bname}", "- {bname}", "Thanks, {bname}", "{bname} ({city})"]

QUOTE_HEAD = ["On {date}, {bname} wrote:", "----- Original message -----", "On {date} the buyer wrote:",
              "> Previous message:", "-----Original Message-----\nFrom: Buyer", "Quoting your message:"]

# ---------------------------------------------------------------- legitimate, seller side

LEGIT = {
    "tracking": [
        "Your {item} shipped today with {carrier}, tracking number {tracking}.",
        "The parcel is on its way; the tracking number is {tracking}.",
        "Good news: order {order} has left our workshop and is with {carrier}.",
        "You can follow the parcel on the order page with tracking {tracking}.",
        "{carrier} scanned your package this morning, so tracking should update within 24 hours.",
        "It was handed to {carrier} on {date}; the reference is {tracking}.",
        "The tracking shows it reached the local depot, so delivery should be {date}.",
        "c:It's shipped! tracking: {tracking}",
        "f:We are pleased to confirm that your order {order} has been dispatched.",
        "Tracking may say 'label created' for a day before the first scan appears.",
        "The parcel is being sent as {n} boxes, each with its own tracking number.",
        "I've added the tracking number {tracking} to your order so it shows on the order page.",
        "The carrier marked it as out for delivery.",
        "Your replacement went out this afternoon, tracking {tracking}.",
        "c:Heads up, it's out for delivery today!",
        "It is currently in customs in {city}; this usually clears in {days} days.",
    ],
    "delay": [
        "I'm sorry, your {item} will ship about {days} days later than planned.",
        "Because of the storm, {carrier} has paused pickups in our area until {date}.",
        "Our kiln broke this week, so your order will be a few days late.",
        "The fabric you chose is back-ordered; I expect it on {date} and will ship right after.",
        "f:We regret to inform you that order {order} has been delayed.",
        "c:Bit of a delay on my end, sorry! Should go out by {date}.",
        "The tracking hasn't moved since {date}; I've opened a trace with {carrier}.",
        "Customs is holding a lot of parcels this month, which is why it's slow.",
        "If you would rather cancel because of the delay, just say so and I'll refund in full.",
        "The new estimated delivery date is {date}.",
        "I was ill last week and am catching up on orders; yours is next.",
        "Holiday volumes mean {carrier} is running {days} days behind.",
        "f:We apologise for the delay and appreciate your patience.",
        "The engraving machine needed a repair, so I'm a day or two behind.",
    ],
    "customization": [
        "Could you confirm the spelling of the name you'd like engraved?",
        "Which font would you prefer, the script or the block letters?",
        "For the monogram, do you want the initials in the order first-middle-last?",
        "I've attached a proof of the design; please check it before I start.",
        "The review of your customization request is done and it all fits on the {item}.",
        "Yes, I can make it in {color} instead of the standard colour.",
        "The maximum is 20 characters per line for the engraving.",
        "Would you like the date on the back as well? There is no extra charge.",
        "c:Love the idea! I can totally do that in {color}.",
        "Please send the photo you'd like printed as an attachment here in the thread.",
        "I can adjust the strap length to {size}; just tell me your measurement.",
        "f:Kindly confirm the following details so we can begin production: name, colour and size.",
        "Once you approve the proof, it takes {days} days to make.",
        "The wording you sent is slightly too long; could we shorten it to two lines?",
        "I'll hold the order until I hear back about the custom text.",
        "Do you want gift wrapping with a handwritten card? Tell me what to write.",
        "We checked your sketch and can match it closely in {color}.",
    ],
    "delivery": [
        "Would a Saturday delivery suit you, or is a weekday better?",
        "The courier can deliver between 9 and 12 or 2 and 6; which window works?",
        "If no one is home, {carrier} will leave a card and try again the next day.",
        "I can ask the carrier to leave it with a neighbour if you prefer.",
        "Please let me know if there's a safe place to leave the parcel.",
        "Since it's a large item it needs a signature on delivery.",
        "f:Please indicate a convenient delivery date through the order page.",
        "c:What day works best for you to get it?",
        "It will be delivered to the pickup point you selected.",
        "I've requested delivery on {date} as you asked.",
    ],
    "address": [
        "Could you confirm your shipping address? The postcode looks incomplete.",
        "The address on the order has no apartment number; is that right?",
        "I'll ship to the updated address you gave me: the one in {city}.",
        "f:Kindly confirm that the delivery address on order {order} is correct.",
        "The carrier says the street name didn't match; can you check it on the order page?",
        "Please update the address in your account and I'll reprint the label.",
        "c:Just checking, is the address still the {city} one?",
        "The parcel came back to us marked 'address unknown'.",
    ],
    "return": [
        "You can return it within 30 days; please start the return from your order page.",
        "I've approved your return; the prepaid label is in the order details.",
        "Once the item is back with us we'll refund within {days} days.",
        "No need to send it back; I'll issue a refund.",
        "f:Please ensure the item is unused and in its original packaging.",
        "c:No worries at all, send it back and I'll sort the refund.",
        "I'm sorry it didn't fit; an exchange for {size} is no problem.",
        "Personalised items can't normally be returned, but since the engraving was wrong it's on us.",
        "We received your return today and the refund is on its way.",
        "The refund of {price} has been issued to your original payment method.",
        "A partial refund of {price} has been sent for the scratch on the lid.",
        "It can take {days} business days for the refund to show on your statement.",
        "I've cancelled order {order} and refunded you in full.",
    ],
    "apology": [
        "I'm really sorry about the mix-up with your order.",
        "f:Please accept our sincere apologies for the inconvenience.",
        "That's my mistake; I sent the wrong colour and I'll fix it.",
        "c:Oh no, so sorry it arrived broken!",
        "I apologise for the slow reply; I was at a craft fair all weekend.",
        "I'm sorry the packaging was damaged; a replacement is going out today.",
        "That should never have happened, and I've changed how we pack mugs.",
        "f:We sincerely regret that the item did not meet your expectations.",
        "Sorry for the confusion about the size chart.",
        "You're right, the description was unclear, and I've corrected it.",
    ],
    "invoice": [
        "I've attached the invoice for order {order} as a PDF.",
        "f:Please find attached the VAT invoice you requested.",
        "The invoice shows the total of {price} including shipping.",
        "I can add your company name to the invoice; what should it say?",
        "The receipt is also available to download from the order page.",
        "c:Invoice attached, let me know if you need any changes!",
        "The import duty is not included; {carrier} may collect it on delivery.",
    ],
    "warranty": [
        "The {item} has a one-year warranty against manufacturing faults.",
        "Please send a photo of the fault here and I'll arrange a repair or replacement.",
        "The warranty covers the motor but not damage from drops.",
        "f:Your warranty claim has been approved and a replacement will be dispatched.",
        "Spare parts for this model are available; I can include the hinge free of charge.",
        "Try charging it for a full hour first; if the light still doesn't come on, it's faulty.",
        "c:That sounds like a faulty battery, I'll send a new one.",
    ],
    "product": [
        "Yes, the {item} is dishwasher safe but hand washing keeps it looking new longer.",
        "It measures 30 x 20 cm and weighs about 400 g.",
        "The {item} is made from recycled materials.",
        "It comes in {color}, navy and cream.",
        "Unfortunately that size is sold out, but I'll have more on {date}.",
        "c:Yep, it fits the newer model too.",
        "f:The product is compatible with standard EU sockets.",
        "The photos show the medium size; the small is about two thirds of that.",
        "The wood is oiled with food-safe oil, so it's fine for cheese and bread.",
        "The price of {price} includes the gift box.",
        "We don't ship to PO boxes, sorry, but any street address is fine.",
        "The stones are lab-grown, not natural.",
    ],
    "thanks": [
        "Thank you for letting me know it arrived safely.",
        "Thank you for your feedback; I've passed it on to our workshop.",
        "c:So glad you like it, thanks for telling me!",
        "Thanks for your patience while we sorted this out.",
        "f:Thank you for your understanding.",
        "It was a pleasure making this for you; enjoy it.",
        "Thanks for the photo, the colours look great in your kitchen.",
        "I'm happy the replacement arrived in one piece.",
        "Thanks for the kind words about the packaging.",
        "I appreciate you taking the time to explain the problem so clearly.",
    ],
    "hardneg": [
        "I'll contact you here once it ships.",
        "I'll message you in this thread as soon as I have news from {carrier}.",
        "Please reply to this message if anything is wrong.",
        "You can reach me any time through the marketplace messages.",
        "We reviewed the photos you sent and agree it's a defect.",
        "Our team reviewed your return request and approved it.",
        "The order number is {order}; please quote it if you contact marketplace support.",
        "Please call {carrier} at the number on the delivery card to rebook.",
        "Follow the tracking on the order page for the latest status.",
        "Your feedback about the clasp was really helpful; we've changed supplier.",
        "If you need to reach the courier, their customer service details are on the tracking page.",
        "The new batch of fabric arrived, so your backordered {item} can now be made.",
        "I have added a note to your order so our packers see it.",
        "You don't need to do anything else; the refund is automatic.",
        "The sale went through and payment is confirmed.",
        "Rating plates and serial numbers are on the underside.",
        "The shop will be closed {date}; orders placed now ship after that.",
        "Email notifications from the marketplace will confirm delivery.",
        "The item number on the label is {order}; that's normal.",
        "I rated the parcel as fragile with the carrier.",
        "Share the tracking number with whoever will receive it if it's a gift.",
        "Sorry, I can't offer a discount on this order, but I can upgrade the shipping for free.",
        "f:We do not share your personal details with third parties.",
    ],
}

# ---------------------------------------------------------------- legitimate, buyer side

BUYER_LEGIT = {
    "question": [
        "Is the {item} available in {color}?",
        "How long does shipping to {city} usually take?",
        "Can you engrave a name on the back? It's a gift.",
        "Does the {item} come with batteries?",
        "c:is this real leather or faux?",
        "What are the exact dimensions of the large one?",
        "Could you ship it before {date}? It's for a birthday.",
        "f:I would like to know whether the product is suitable for children under three.",
        "Can I change the colour after ordering?",
        "Do you offer gift wrapping?",
    ],
    "problem": [
        "My order hasn't arrived and the tracking hasn't changed since {date}.",
        "The {item} arrived with a crack in it.",
        "c:got the wrong size :( ordered {size}",
        "I was charged twice for order {order}.",
        "The engraving has a spelling mistake.",
        "The parcel says delivered but I never received it.",
        "f:I am disappointed with the quality and would like to return it.",
        "One of the {n} items is missing from the box.",
        "It stopped working after two days.",
    ],
    "request": [
        "Can I cancel my order please?",
        "Please change the delivery address to my work address in {city}.",
        "Could you send a photo of the proof before making it?",
        "I'd like to return it; how do I do that?",
        "Can you send an invoice with my company name?",
        "c:could u hold it till I'm back on {date}?",
        "f:Kindly let me know when I can expect the refund.",
    ],
    "thanks": [
        "It arrived today and it's beautiful, thank you!",
        "Thanks for the quick reply.",
        "c:omg love it!! thank you",
        "Got it, thanks for sorting the refund.",
        "f:Thank you for resolving this so promptly.",
        "Received the replacement, all good now.",
        "I left you five stars already, thanks for everything.",
        "See you next order!",
    ],
}

# ---------------------------------------------------------------- violating

MARKETING = {
    "direct": [
        "Use code {code} for {pct}% off your next order!",
        "Our {season} sale starts Friday: everything is {pct}% off for three days.",
        "f:As a valued customer you are entitled to an exclusive {pct}% discount on your next purchase.",
        "Buy two, get the third free on all candles this week.",
        "c:Psst, everything in the shop is {pct}% off till Sunday!",
        "Free shipping on all orders over {price} this month.",
        "Check out our other items, we have lots of matching pieces.",
        "Don't miss our clearance event, prices have never been lower.",
        "Sign up for our newsletter and get a welcome gift.",
        "Here's a coupon for {pct}% off: {code}.",
        "Follow our store to be the first to hear about new drops.",
        "Flash deal today only: the {item} for just {price}.",
        "Join our loyalty club and earn points on every purchase.",
        "Stock up now before prices go up next month!",
        "Take a look at the rest of our shop, you won't regret it.",
        "We are running a bundle deal: add a second {item} for half price.",
        "Refer a friend and you both get {price} off.",
        "f:We would like to invite you to our members-only pre-sale.",
        "Black Friday starts early for our regular buyers.",
        "Favourite our shop to unlock special prices.",
    ],
    "indirect": [
        "Our {season} collection just arrived and I thought of you.",
        "Customers who liked the {item} also love our {newthing}.",
        "We've just added {newthing}, which would go perfectly with what you bought.",
        "If you enjoyed this, you might want to see what else we make.",
        "c:Also, we just launched {newthing} — they'd look amazing next to yours!",
        "Since you bought the {item}, I've set aside a few pieces from the new line you might like.",
        "f:Returning customers are welcome to request our private catalogue.",
        "Next time you order, just mention this message and I'll take care of you.",
        "Many buyers come back for a second one as a gift; it's a lovely idea for the holidays.",
        "I'll be putting out a small batch of {newthing} on {date}; they always go fast.",
        "Keep an eye on our shop page this weekend, something special is coming.",
        "We'd love to welcome you back; there's a little surprise waiting on your next order.",
        "The {item} pairs beautifully with our {newthing}, in case you're looking for a gift.",
        "c:Btw the {color} version is back and it's gorgeous, just saying!",
        "Your next purchase from us comes with a thank-you price, just ask.",
        "Did you know we also make {newthing}? Worth a look.",
        "For our favourite customers we open the shop a day early; you're on the list.",
        "Christmas is around the corner and our gift boxes are ready whenever you are.",
        "Treat yourself: the {season} edition won't be around for long.",
        "Our prices drop a little for anyone ordering two or more, if that helps.",
        "Friends of the shop get first pick of the new season pieces.",
        "Come and see what's new on our storefront.",
    ],
}

REVIEW = {
    "direct": [
        "Please leave us a 5-star review if you're happy.",
        "Could you take a moment to rate your purchase?",
        "f:We would be grateful if you could leave positive feedback for this transaction.",
        "c:A quick review would really help us out!",
        "Don't forget to leave feedback once it arrives.",
        "Please rate us five stars, it means the world to a small shop.",
        "If you're satisfied, please leave a review on the product page.",
        "Kindly give us a good rating.",
        "Reviews are the lifeblood of our business, so please write one!",
        "Would you mind posting a photo review?",
        "Please click the stars on your order page, five if you can.",
        "Only leave feedback if it's five stars; otherwise write to me first.",
    ],
    "indirect": [
        "We'd love to hear how you're getting on with it.",
        "If you have a moment, sharing your experience helps other shoppers decide.",
        "Tell everyone what you think of it, it helps small makers like us.",
        "c:Would love it if you told other buyers what you think!",
        "Your thoughts on the {item} would mean so much to us, wherever you'd like to share them.",
        "A few words about your experience on the product page would be wonderful.",
        "f:Your honest impressions would help future customers make their choice.",
        "When you've had a chance to use it, let others know how it went.",
        "It would make my day if you shared a photo of it on the listing.",
        "Other shoppers really trust what buyers like you say about us.",
        "How many stars would you give us? Let the marketplace know.",
        "If we've earned it, a kind word on the listing goes a long way.",
        "Once it's settled in, we'd be thrilled to read your impressions.",
        "Help others discover us by sharing how you feel about your purchase.",
        "Let the community know what you think of our work.",
        "Your opinion on the order page helps us get noticed.",
    ],
    "incentive": [
        "For a 5-star review we'll refund your shipping.",
        "Leave a review and I'll send you a free gift with your next order.",
        "If you post a photo review, we'll give you {price} back.",
        "c:Leave 5 stars and I'll throw in a freebie next time!",
        "We offer a {pct}% refund to buyers who share a positive review.",
        "Send me a screenshot of your review and I'll refund {price}.",
        "f:Customers who leave feedback receive a complimentary sample.",
        "Write a nice review and the next one is on us.",
    ],
    "change": [
        "Could you please remove your negative review? I'll make it right.",
        "Would you consider updating your rating now that the issue is fixed?",
        "f:We kindly request that you revise your feedback in light of the refund.",
        "If you delete the 1-star review I'll refund the full amount.",
        "c:Any chance you could change the review to 5 stars now?",
        "I've sent a replacement, so I hope you'll edit what you wrote about us.",
        "Please take down the review, it's hurting my small shop.",
        "Now that it's sorted, would you mind bumping your stars up?",
    ],
}

CONTACT = {
    "words": [
        "Let's talk on {appdesc}, it's faster.",
        "Message me directly on {app} and we can sort it out there.",
        "Search my name on {app}, I'm {handle}.",
        "c:Add me on {app}! {handle}",
        "Call me and we can discuss the custom design.",
        "Email me at my {mail}, it's {user}.",
        "f:For faster service, please contact us directly via {app}.",
        "Text me when you're home and I'll send the driver.",
        "It's easier to chat outside the marketplace; find me on {app}.",
        "Drop me a line at {user} on {mail} and I'll send more photos.",
        "Give me a ring tomorrow and we'll figure it out.",
        "We can skip the platform fees if you message me privately.",
        "Scan the QR code on the card in your parcel to chat with us.",
        "Follow me on {social} and DM me there.",
        "My personal number is in the parcel note, text me.",
        "c:hit me up on {app}, way easier lol",
        "f:Please reach out to our direct line for priority support.",
        "Find us on {app} by searching for {shop}.",
    ],
    "handle": [
        "My {app} ID is {handle}.",
        "{app}: {handle}",
        "You can find me on {app} as {handle}.",
        "c:my {app} is {handle}, add me",
        "Send a message to {handle} on {app}.",
        "I'm {handle} on {social}, just DM me.",
        "Our {app} account: {handle} (same name as the shop).",
        "Email: {user} at {mail} dot com.",
        "Write to {user} (at) {mail} (dot) com.",
        "You can email me at {user} @ {mail}.",
    ],
    "number": [
        "Call me on {phone}.",
        "My number is {phone}, text anytime.",
        "f:Please call our office at {phone} between 9 and 5.",
        "c:text me {phone}",
        "WhatsApp me at {phone}.",
        "Reach me on {phone} if the courier can't find you.",
        "My cell: {phone}.",
        "You can ring us at {phone} for a faster answer.",
    ],
}

BUYER_CONTACT = [
    "Can I just call you? My number is {phone}.",
    "It's easier for me on {app}, my ID is {handle}.",
    "c:can u text me instead? {phone}",
    "Please email me at {user} at {mail}, I don't check this app.",
    "Add me on {app} and send me the photos there.",
    "f:Could you contact me directly by phone at {phone}?",
    "What's your {app}? I'd rather chat there.",
    "Do you have a number I can call?",
    "Message me on {social}, I'm {handle}.",
    "Let's move this to {appdesc}.",
]

GRAMMAR = [
    ("review.indirect", " ", [
        ["If you have a moment,", "When you get a chance,", "Whenever it suits you,", "Once you've tried it,",
         "No pressure, but", "If it's not too much trouble,", "After a few days of use,"],
        ["sharing your experience", "a few words about the {item}", "telling other shoppers what you think",
         "your impressions on the listing", "a little note on the product page", "your honest opinion",
         "a photo and a sentence or two"],
        ["helps other buyers a lot.", "means the world to us.", "really helps a small shop like ours.",
         "would be so appreciated.", "helps people decide.", "keeps our little business going."],
    ]),
    ("marketing.indirect", " ", [
        ["By the way,", "Also,", "P.S.", "Just so you know,", "Before I forget,"],
        ["we just released {newthing}", "our {season} range is now in the shop", "the {color} edition is back",
         "we've opened a new corner of the shop with {newthing}", "there's a little something new on our page"],
        ["and I think you'd love it.", "if you fancy a look.", "for returning customers first.",
         "that goes perfectly with your {item}.", "before it sells out.", "and friends of the shop get first dibs."],
    ]),
    ("contact.words", " ", [
        ["Honestly,", "To make it easier,", "If you prefer,", "c:tbh", "For anything urgent,", "Next time,"],
        ["just message me on {app}", "find me on {appdesc}", "ping me on {app}", "call or text me",
         "drop me an email on my {mail}", "look me up on {social}", "add {handle} on {app}"],
        ["and we'll chat there.", "so we don't have to use this site.", "— I reply faster there.",
         "and I'll send you the details.", "instead of this inbox.", ""],
    ]),
    ("marketing.direct", " ", [
        ["This week only,", "For you,", "As a thank you,", "Good news:", "c:omg"],
        ["everything in the shop is {pct}% off", "use code {code} at checkout", "shipping is free on your next order",
         "our {season} sale is live", "you get a second {item} at half price"],
        ["— don't miss it!", "until Sunday.", "while stocks last.", "so grab yours now.", "."],
    ]),
]

SPACE_WORDS = ["review", "stars", "feedback", "WhatsApp", "LINE", "Telegram", "WeChat", "coupon", "sale", "discount",
               "tracking", "order", "refund", "number", "call", "email", "shop", "new", "rate"]
MIX: list[tuple[str, str]] = []


# ---------------------------------------------------------------- second pass: more phrasings by concept

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def spoken(rng: random.Random) -> str:
    """A phone number written in words, the way people dodge digit filters."""
    digits = rng.choice(["07", "09", "01", "05"]) + "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 9])))
    words = [rng.choice(["oh", "zero"]) if d == "0" else WORDS[int(d)] for d in digits]
    groups = [words[:3], words[3:6], words[6:]]
    sep = rng.choice([" ", "-", ", ", " "])
    return rng.choice([", ", " / ", " - "]).join(sep.join(g) for g in groups)


MARKETING["launch"] = [
    "We're running a pottery workshop next month and there are still a few seats left.",
    "Pre-orders for the {season} edition open on {date}; early birds get theirs first.",
    "Our mystery boxes are back: five surprise pieces, always worth more than you pay.",
    "The holiday gift guide is out, with ideas for every budget.",
    "We're now making {newthing} as well, in case you ever need one.",
    "Each piece in the new numbered edition is signed, and only fifty exist.",
    "We'll be doing a pop-up stall in {city} on {date}, come and say hello.",
    "A brand-new colourway lands on {date}. I have a feeling you'll like it.",
    "c:we made a thing!! {newthing}, out now",
    "f:We are pleased to present our latest range, now available in our storefront.",
    "Our wholesale programme has just launched, if you know a shop that might be interested.",
    "We've started a monthly subscription with a different hand-picked item every time.",
    "There's a free tote with every order over {price} until stocks run out.",
    "Want a second one engraved for a friend? Returning customers get the engraving free.",
    "Trade in your old {item} and we'll give you credit toward a new one.",
]
MARKETING["loyalty"] = [
    "Bring a friend to the shop and you'll both get a little something off.",
    "Because you've ordered before, the members' price applies to your next basket automatically.",
    "Add us to your favourites so the next drop shows up in your feed.",
    "Our anniversary week means treats for everyone who has shopped with us before.",
    "Your third order with us comes with a free upgrade, just saying.",
    "We'll match any lower price you find for the same item, always.",
    "c:regulars get first dibs on the new stuff, and ur a regular now",
    "f:As one of our valued patrons, you are invited to an exclusive preview.",
    "Keep your eyes on the shop tonight: a few special pieces go up at midnight.",
    "Every order earns stamps; ten stamps and your next candle is free.",
    "If you order before the end of the month, the price stays at this year's rate.",
    "Treat someone you love: our wrapped gift sets are ready to go.",
    "You might like what else is in the shop; the {color} range especially.",
    "Why not make it a pair? The second one is cheaper when bought together.",
    "We've got a wishlist feature now, perfect for dropping hints before your birthday.",
]
REVIEW["reminder"] = [
    "Your verdict on the order page would mean a lot to us.",
    "Top-seller badges depend on buyer ratings, so yours really counts.",
    "If we did a good job, please vote for us with your stars.",
    "An unboxing photo on the listing would be the best compliment.",
    "Would you recommend us to others on the marketplace? We'd be honoured.",
    "The marketplace ranks shops by their ratings, and we're trying to climb.",
    "A short testimonial from you would help the next buyer feel confident.",
    "c:if u liked it, stars pls, we're tiny and it helps heaps",
    "f:We would be most grateful for your evaluation of our service.",
    "Let people know whether the {item} lived up to the photos.",
    "A rating from you is the best way to support a small maker.",
    "Do consider telling other customers about your purchase; they listen to buyers, not to us.",
    "We'd treasure a comment from you under the product.",
    "If you think we earned them, the five stars would be a dream.",
    "Whenever you're ready, tell the world what you think of your new {item}.",
]
REVIEW["incentive"] += [
    "Buyers who leave a rating go into our monthly prize draw.",
    "If your review includes a photo, your next order ships free.",
    "Rate us five stars and we'll upgrade your next delivery to express.",
    "c:review us and i'll slip a bonus keyring in ur next order",
    "f:A gift voucher will be issued upon receipt of your positive feedback.",
]
REVIEW["change"] += [
    "Now that we've made it right, I hope you'll consider raising your rating.",
    "Would you please edit your review so it reflects the solution?",
    "If you withdraw the negative feedback, we'll send a free replacement.",
    "The one-star rating doesn't reflect the fix; could you amend it?",
]
CONTACT["elsewhere"] = [
    "Pop me a message on my mobile, it's on the receipt.",
    "We have a customer hotline; the number is on our packaging.",
    "Search for my phone number in {app} and you'll find me.",
    "My username is the same on every app: {handle}.",
    "Friend me on {social} and we'll sort the details there.",
    "Send me a voice note on {app}, typing is slow for me.",
    "We could meet up in person in {city} and skip the shipping.",
    "Let's take this off-site, it's simpler for both of us.",
    "My assistant will call you; just leave your number here.",
    "The little card in your box has our {app} ID on it.",
    "Scan the sticker on the lid to chat with us directly.",
    "c:just dm me on {social}, faster than this thing",
    "f:Kindly provide your telephone number so that our staff may contact you.",
    "Reply with your mobile and I'll send the photos by SMS.",
    "Our direct email is the shop name at {mail}.",
    "You can always find me on {appdesc}, under my shop name.",
    "Better to talk by phone for something this detailed; what's a good time and number?",
    "I'm much quicker on {app} than on here, honestly.",
    "Leave your number and I'll text you when it's ready.",
    "Search the shop name on {social} and send us a private message.",
]
CONTACT["spelled"] = [
    "My number is {spoken}, evenings are best.",
    "Ring me on {spoken}.",
    "c:text me, it's {spoken}",
    "The direct line is {spoken} if the driver gets lost.",
    "WhatsApp: {spoken}.",
    "Write to {user} at {mail} dot com, all lowercase.",
    "My email is my shop name at {mail}, no spaces.",
    "f:Our office can be reached on {spoken} during business hours.",
]
BUYER_CONTACT += [
    "Could you call me instead? I'm at work and can't type much. {spoken}",
    "Send the photos to my {app}, my ID is {handle}.",
    "My email is {user} at {mail}, use that please.",
    "c:u on {app}? easier there",
    "I'd like to speak to you directly, is there a number?",
]
LEGIT["numbers"] = [
    "The case reference for your return is RMA-{n}4410.",
    "Your order {order} contains {n} items and was paid on {date}.",
    "Batch number 24-{n}11 is printed inside the lid, in case you need it for a claim.",
    "The invoice number is INV-2026-0{n}42 and the total is {price}.",
    "The locker code comes by text from {carrier}, not from us.",
    "Please quote order {order} if you speak to {carrier} about the delivery.",
    "Our reference for this replacement is R-{n}0057.",
    "Serial number SN{n}4471-B is on the sticker under the base.",
    "Your customs declaration lists the value as {price}.",
    "The order ID {order} and the tracking ID {tracking} are both on the packing slip.",
]
LEGIT["hardneg"] += [
    "Thanks for the honest review of the proof, I've made the changes you asked for.",
    "Your comments on the colour were spot on, so the reprint will be a shade darker.",
    "No need to rate or reply, this is just to let you know it's sorted.",
    "I've shared your suggestion with the workshop.",
    "How long should the cord be? I'll cut it to size.",
    "The stars on the label are part of the brand's logo, not a defect.",
    "Our number one priority is getting this right for you.",
    "We have a new courier from next month, so parcels may arrive a day sooner.",
    "The shop has moved to a new workshop, but nothing changes for your order.",
    "Please keep the old one; there's no need to send anything back.",
    "Contact marketplace support if the refund hasn't arrived in five days.",
    "The code on the parcel is the carrier's barcode, not a discount code.",
    "Our studio reviews every custom order by hand before we cut the wood.",
    "The new version of the listing has the correct measurements.",
    "I can't share other buyers' details, but yes, others have had the same question.",
]
BUYER_LEGIT["thanks"] += [
    "Already rated, well deserved. Cheers!",
    "c:done the stars thing, ty!!",
    "Thanks, I'll definitely shop here again.",
]
BUYER_LEGIT["question"] += [
    "Is the engraving on the inside or the outside of the ring?",
    "Do you ship to Norway, and how long would it take?",
    "Is there a care guide for the leather?",
    "Can I add a note to the parcel? It's a gift.",
]
BUYER_LEGIT["problem"] += [
    "The zip on the bag broke on the first day.",
    "My warranty reference is W-{n}221, the light still flickers.",
    "The colour is much darker than in the photos.",
]

# ---------------------------------------------------------------- third pass: legitimate look-alikes

LEGIT["progress"] = [
    "Your bowls are drying on the shelf now and go into the kiln on {date}.",
    "The leather is cut and stitched; I'll burnish the edges tomorrow.",
    "Progress report: the frame is glued and clamped, painting starts {date}.",
    "The fabric has been washed and pressed, so sewing begins this week.",
    "Your piece came out of the final firing with no cracks, which is always a relief.",
    "I'm halfway through the embroidery; the lettering is done.",
    "The varnish needs two days to cure before I can pack it.",
    "c:Little update: it's all stitched up and looking lovely!",
    "f:Production of your order is progressing as scheduled.",
    "Everything is finished except the final quality check.",
]
LEGIT["info"] = [
    "Could you tell me the ring size you normally wear?",
    "Please let me know the width of the window so I can cut the curtain correctly.",
    "Would you send a picture of the broken part so I can order the right spare?",
    "Tell me which of the two proofs you prefer and I'll go ahead.",
    "Can you let me know whether the recipient has a nut allergy? Some bars contain almonds.",
    "Let me know if the parcel should be marked as a gift so no price is shown.",
    "f:Kindly advise whether you would prefer a matte or a glossy finish.",
    "c:Just tell me the colour you want and I'll start!",
]
BUYER_LEGIT["rated"] = [
    "Just rated the order, well deserved.",
    "I put five stars on the order page, you were great.",
    "Left some feedback about how fast it came, thanks!",
    "c:gave u full marks on the site :)",
    "f:I have submitted my rating for this transaction; thank you for the service.",
]
BUYER_LEGIT["numbers"] = [
    "The tracking {tracking} hasn't updated in four days.",
    "It's order {order}, the one with the engraving.",
    "I paid {price} but the receipt says a different amount; order {order}.",
    "The courier left a card with reference {tracking}, what should I do?",
    "Can you check order {order}? The app says cancelled.",
]

# ---------------------------------------------------------------- fourth pass: a broader legitimate side
# Ordinary things a small shop and its buyers write, many of them whole one- or two-line messages, so
# that short unfamiliar wording is not a sign of a violation.

LEGIT["confirm"] = [
    "Got it, the name will read \"Ella\" in capitals.",
    "Just to confirm: gold thread, script font, initials only.",
    "c:yep, {color} it is!",
    "Noted, no gift box.",
    "I'll use the date you sent, 14.06.2025, on the back.",
    "Your photo is sharp enough for the print, no problem.",
    "f:We confirm the engraving text as supplied, including the full stop.",
    "Left hand or right hand? The strap is made differently for each.",
    "The second line will be smaller so it fits.",
    "All clear, starting on it this afternoon.",
    "c:perfect, that's all I needed",
    "The spelling \"Kathryn\" with a y, is that right?",
    "Understood, I'll leave off the heart symbol.",
    "f:Your amended text has been received and will replace the earlier version.",
    "Sure, I can make it 2 cm shorter at no extra cost.",
]
LEGIT["care"] = [
    "Hand wash only, and dry it flat.",
    "Oil the board once a month with any food-safe mineral oil.",
    "Keep the candle wick trimmed to about 5 mm.",
    "The glaze is dishwasher safe but the gold rim is not.",
    "c:don't put it in the microwave, the handle gets hot",
    "Store the silver in the little pouch and it won't tarnish as fast.",
    "Let the leather dry naturally if it gets wet, never on a radiator.",
    "Wash it inside out at 30 degrees the first few times; the dye may run a little.",
    "f:Please allow the product to reach room temperature before first use.",
    "A soft brush is all you need to clean the felt.",
    "The print will fade in direct sun, so a shady wall is best.",
    "Charge the lamp fully before the first use; it takes about four hours.",
    "Water the plant lightly once a week, more in summer.",
    "If the wood feels rough after washing, a light sanding fixes it.",
    "Iron on the reverse side so the embroidery stays raised.",
]
LEGIT["sizing"] = [
    "It's solid oak, not veneer.",
    "The mug holds 350 ml, filled to the brim.",
    "c:runs a bit small, I'd go one size up",
    "The chain is 45 cm; I can do 40 or 50 if you prefer.",
    "It's 100% cotton, pre-washed.",
    "The {color} is a little warmer in daylight than on screen.",
    "Width 32 cm, height 40 cm, handles 60 cm.",
    "f:The fabric weight is 280 g/m², suitable for year-round use.",
    "The clasp is sterling silver, the chain is plated.",
    "Yes, it fits an A4 folder with room to spare.",
    "The medium fits a dog with a 50-60 cm chest.",
    "There's no lining, so it's quite light.",
    "The two greens are close; the darker one is {color}.",
    "It weighs about 1.2 kg without the stand.",
    "The dye is plant-based and the wax is soy.",
]
LEGIT["shipping"] = [
    "We can't send candles by air, so it goes by ground, {days} days.",
    "Sorry, lithium batteries can't go abroad, so the lamp ships without one.",
    "It goes with {carrier} unless you'd rather have a different service.",
    "Express is {price} extra and arrives in {days} working days.",
    "Import duties are paid by the recipient; {carrier} will collect them on delivery.",
    "I've marked the customs form as a gift with a value of {price}.",
    "f:Please note that shipments outside the EU may incur VAT and handling fees on arrival.",
    "We don't ship perishables to islands in summer, sorry.",
    "c:it'll go signed-for, so someone needs to be in",
    "The parcel is too big for a letterbox, so it'll go by courier.",
    "The customs form needs a tariff code, I've filled it in for you.",
    "Parcels over 2 kg have to go by courier here.",
    "The post office near me closes early on Saturdays, so it'll go Monday.",
    "Knives can't be posted to your country, so I've refunded that line.",
    "The collection point will call you when it arrives.",
    "We send everything plastic-free, in recycled paper.",
]
LEGIT["fixes"] = [
    "My mistake, I sent the {color} instead of the one you chose; the right one goes out tomorrow.",
    "Half the order shipped today; the rest follows on {date}.",
    "The second item is backordered until {date}. Shall I ship the first one now?",
    "Your order is cancelled and nothing has been charged.",
    "The refund of {price} was sent this morning; your bank may take {days} days.",
    "A replacement is on the way, tracking {tracking}.",
    "I mixed up two labels on Tuesday, which is why you got someone else's parcel. So sorry.",
    "You don't need to return the faulty one, just recycle it.",
    "c:oops, wrong invoice attached, here's the right one",
    "f:We have issued a partial refund of {price} for the missing item.",
    "I'll cover the return postage, of course.",
    "The courier damaged it, so I've opened a claim with them; your new one ships anyway.",
    "I found your missing piece on the packing table, it's posted now.",
    "The typo is entirely our fault and the reprint is on us.",
    "The wrong size was our error; keep the first pair if they fit anyone.",
    "Cancelled as you asked. No hard feelings at all!",
    "Part two of your order left the workshop this morning.",
    "We only had four in stock, so the fifth will follow on its own.",
]
LEGIT["closure"] = [
    "We're closed {date} for the holiday; orders placed now ship the day after.",
    "I'm away for a week, so dispatch resumes on {date}.",
    "The workshop is shut over New Year; your order is first in the queue when we're back.",
    "f:Please note that our dispatch will be suspended during the national holidays.",
    "c:heads up, no post on Monday, it's a bank holiday",
    "The last day for Christmas delivery in the UK is {date}.",
    "We're moving workshop this weekend, so there may be a two-day delay.",
    "The post is on strike on Thursday; I'll send it Friday instead.",
    "Our summer break runs until {date}. Messages are still answered.",
    "The kiln is being repaired, so glazed pieces are about a week behind.",
]
LEGIT["wishes"] = [
    "Happy birthday to your daughter!",
    "Congratulations on the wedding, I hope the day is perfect.",
    "I hope your mum loves it.",
    "Good luck with the move!",
    "c:have the best time at the party!",
    "f:Please accept our warmest congratulations on the birth of your son.",
    "Wishing you a lovely anniversary.",
    "I hope your dad feels better soon.",
    "Enjoy the trip, the bag should be perfect for it.",
    "Thank you for the lovely message, it made my day.",
    "That's so kind of you to say, thank you.",
    "c:aw thank you, you're too nice!",
    "Thank you for the photo of the garden, the bench looks at home there.",
    "It means a lot that you came back for a second one.",
    "I'm so sorry for your loss; I'll take extra care with the memorial plate.",
    "Merry Christmas, and thanks for your order this year.",
    "Happy New Year from all of us at {shop}.",
]
LEGIT["short"] = [
    "Shipped!",
    "On its way.",
    "Done, thanks.",
    "Received, thank you.",
    "c:no worries!",
    "c:sure thing",
    "f:Thank you for your message.",
    "f:Noted with thanks.",
    "Yes, that's fine.",
    "Posted this morning.",
    "All sorted now.",
    "Will do.",
    "Sorry about that!",
    "Refund done.",
    "Packed and ready.",
    "Let me check and get back to you.",
    "I'll look into it today.",
    "c:ha, glad it made it in the end",
    "It's in the post, tracking {tracking}.",
    "Yes, it's in stock.",
    "No, sorry, that one's sold.",
    "Order {order} is ready to go.",
    "Thanks, changed.",
    "Okay, I'll hold it until {date}.",
    "Address updated.",
    "That's correct.",
    "Leave it with me.",
    "Fixed, thanks for spotting it.",
    "It left today. Should be with you {date}.",
    "Ah, that's annoying. Send me a photo here and I'll sort it.",
]
LEGIT["hardneg"] += [
    "Thanks for your feedback, we've made the strap longer since.",
    "I'll keep you posted here.",
    "The new batch is for your order; I'll start cutting tomorrow.",
    "Thank you for recommending us to your sister, her order is packed.",
    "The discount the marketplace applied at checkout is already on your invoice.",
    "The coupon field is on the checkout page, it's the marketplace's own promotion.",
    "The call from {carrier} is about booking a delivery slot.",
    "Your rating of the fabric sample was clear, so we'll go with the heavier one.",
    "I can't add anyone on apps, but I'm here whenever you need me.",
    "Please don't send me your phone number; the carrier already has it from the order.",
    "The five stars on the box are the hotel rating on the print, not ours.",
    "Our newsletter isn't something I can sign you up for, sorry, but I'll answer here.",
    "The link in the tracking email goes to {carrier}'s site, that's fine to use.",
    "I reviewed the sizes again and the large is the right one for you.",
    "Sale items can be returned like anything else.",
    "The promotion you saw ended before you ordered, so the price was correct.",
    "Follow the care card in the box and it will last for years.",
    "Ask me anything here, happy to help.",
]
BUYER_LEGIT["short"] = [
    "Any update?",
    "Thanks!",
    "c:ok cool",
    "c:got it ty",
    "Great, thank you.",
    "When will it ship?",
    "Has it been posted yet?",
    "Perfect.",
    "Still not here.",
    "c:where's my stuff lol",
    "f:Thank you, that is acceptable.",
    "Sounds good.",
    "Yes please.",
    "No, that's all.",
    "Arrived today.",
    "It's here!",
    "Can I still change it?",
    "Is this still available?",
    "Refund received, thanks.",
    "Order {order}?",
    "Tracking shows nothing.",
    "It's broken.",
    "Wrong colour.",
    "c:hiya, any news on my order?",
    "Oh no. Okay, thanks for telling me.",
    "Fine by me, go ahead.",
]
BUYER_LEGIT["more"] = [
    "Please put \"Happy 40th, love from Jo\" on the gift note.",
    "No receipt in the parcel please, it's a present.",
    "I've moved; the new address is in my profile now, could you use that?",
    "Can you ship to my parents' house instead? Same city.",
    "The box was crushed and the lid is chipped, photo attached.",
    "I need a VAT invoice for my company, the details are below.",
    "The lamp stopped charging after three months; is that covered by the warranty?",
    "Could you split the order and send the candles first?",
    "c:can u do it in {color} instead?",
    "f:I would be grateful if you could confirm the expected delivery date.",
    "Is it safe for a dishwasher?",
    "What wood is it made from?",
    "How do I get wax out of the jar afterwards?",
    "Will I have to pay customs in Canada?",
    "Do you ship with {carrier}? Other carriers don't deliver here.",
    "The courier wants a fee before delivering, is that normal?",
    "I ordered the wrong size, can I swap it?",
    "Please cancel the second mug, I only need one.",
    "Honestly this is the third time it's late and I'm not happy.",
    "The stitching came apart after one wash.",
    "Can I pick it up in {city} to save the postage?",
    "The receipt shows the wrong name, could you fix it?",
    "I'll recommend your shop to my friends, it's lovely.",
    "Thank you, my mum cried when she opened it.",
    "It's for my grandson's christening on {date}.",
    "Could you write the card in French?",
    "Can you leave the price off the packing slip?",
    "The parcel was left in the rain and the box is soaked, the item seems fine.",
    "c:the dog chewed the strap lol, can i buy just a new strap?",
    "f:Please find attached photographs of the damage for your records.",
    "I'll be away from {date}, could you hold it until then?",
    "Is the refund to my card or store credit?",
    "What's the warranty on the motor?",
    "Are the earrings nickel free? I react to it.",
    "Do you have the matching cushion in stock?",
    "Thanks for being so patient with all my questions.",
    "We'll keep an eye on the tracking, thanks.",
    "The collection point called, I'll fetch it tomorrow.",
    "I paid for express but it came standard.",
    "My order number is {order}, and the tracking {tracking} says returned to sender.",
]

# ---------------------------------------------------------------- fourth pass: fresh violating shapes

MARKETING["indirect"] += [
    "The {color} version has been flying off the shelf, in case you fancy another.",
    "We just finished restocking everything you looked at last time.",
    "Next week the workshop opens its doors for a late-night shopping evening.",
    "c:the new spring stuff is up, just saying 👀",
    "Plenty of our buyers pick up a spare for gifting.",
    "Our tote bags pair really nicely with what you bought.",
    "We're putting together bundles again, and yours would be a great base.",
]
REVIEW["indirect"] += [
    "You're warmly invited to tell other shoppers how the {item} is working out.",
    "We'd love to hear your story on the product page once you've used it a bit.",
    "Care to join the buyers who've shared their thoughts on the listing?",
    "c:would be amazing if u told everyone what u thought on the site",
    "f:We would welcome your impressions on the listing at your convenience.",
    "Your words on the shop page could help someone unsure about ordering.",
    "When you've had a chance to try it, the comment box on the listing is waiting for you.",
]
CONTACT["words"] += [
    "Let's chat somewhere this site doesn't read our messages.",
    "It'd be quicker to sort this out over the phone, let me give you my digits.",
    "Drop me a line directly and we can skip the fees next time.",
    "c:hmu outside the platform, way easier",
    "f:For future orders, you may contact us directly rather than through the marketplace.",
    "I'll send you my private email so we can arrange the rest.",
    "There's a group chat for our regulars; I'll add you if you send your number.",
]

# Short violations, so that a very short message is not a sign of a legitimate one.
MARKETING["short"] = [
    "New stock Friday!",
    "{pct}% off this weekend.",
    "c:sale's on 🎉",
    "Code {code} still works.",
    "More colours in the shop.",
    "Restock tonight, set an alarm.",
    "Grab a spare while it's cheap.",
    "f:Our seasonal offer ends {date}.",
    "Seen our new candles?",
    "Matching mug available too.",
]
REVIEW["short"] = [
    "Stars please!",
    "c:5⭐ pls?",
    "A quick rating would help.",
    "Review us?",
    "Tell others what you think?",
    "f:Your rating would be appreciated.",
    "Feedback helps us loads.",
    "Would you rate the order?",
    "Pop a review on when you can.",
    "Could you bump the rating up now?",
]
CONTACT["short"] = [
    "Text me.",
    "c:add me on {app}",
    "{app}: {handle}",
    "Call me on {phone}.",
    "DM me on {social}.",
    "f:Please contact us by phone.",
    "Easier by email?",
    "I'm on {appdesc}.",
    "Message me off here.",
    "Number please?",
]
BUYER_CONTACT += [
    "Can I just call you?",
    "c:whats ur {app}?",
    "Email me instead: {user} at {mail}.",
    "Do you have a number?",
]
